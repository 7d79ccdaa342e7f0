"""Final held-out question sets for ``switchboard eval answers``: a dental practice, a pharmacy
counter and an apartment leasing office, written as callers ask and operators write, without
reading the answering rules, and run once at the end so their pass rates are honest numbers."""

from __future__ import annotations

from appliance.bench.answer_questions import SETS, YES, QuestionSet, q

STARTS_YES = r"^(yes|yeah|yep|sure|of course|absolutely|definitely)\b"
# a plain "no"; "I don't have that information", "I can't say" or "I'm not sure" is none
DENY = (r"^no\b|\bno[,.!]|[.!?] no (?!(information|info|details)\b)|"
        r"\b(don't|do not|doesn't|does not|won't|will not|can't|cannot|aren't|are not|isn't|"
        r"is not) (?!(have|got) (that|this|the |any (info|details|record)|information|info|"
        r"details|specific|access|a record)|(know|say|tell|confirm|help|sure|certain|find|see|"
        r"check|look|answer|give|seem|be|access)\b|think i\b|something i\b|listed|mentioned|"
        r"in my|covered)|\bnot (offered|available|something we)\b|"
        r"\b(have|has|there are|there's|there is) no (?!(information|info|details|record|idea)\b)|"
        r"\bonly (have|do|offer|deliver|vaccinate|allow|take|accept)\b")
# an affirmation, not "I'm not sure if we offer that"
SAID = r"(?<!if )(?<!whether )"
# a hedge where the knowledge has the answer (it may echo the question's own words)
HEDGE = r"not sure|(don't|do not) know|no information"

# --- a dental practice -------------------------------------------------------------------------
DENTAL_KNOWLEDGE = """\
Brightside Dental, 27 Harbor Road, Suite 3, Westfield, in the Harbor Plaza shopping center between the bank and the post office.
Hours: Monday, Tuesday and Thursday 8 am to 5 pm. Wednesday 10 am to 7 pm. Friday 8 am to 1 pm. Closed on weekends, and closed the week between Christmas and New Year.
Parking: free in the Harbor Plaza lot. The number 14 bus stops in front of the plaza.
Dentists: Dr. Lena Okafor (owner, general dentistry) and Dr. Raymond Cho (children and nervous patients). Hygienist: Beth Marsh. Office manager: Carla Diaz.
Services: check-ups and cleanings, fillings, crowns, root canals, teeth whitening, and children's dentistry from age 3. We do not do braces or Invisalign, implants, or wisdom tooth removal; we refer those to specialists.
Prices without insurance: new patient exam with X-rays $120. Cleaning $95. Teeth whitening $350.
Insurance: in network with Delta Dental and MetLife. For other plans we give you a receipt to claim yourself. We do not accept Medicaid.
Cancellations need 24 hours notice, or there is a $40 late cancellation fee.
Toothache or broken tooth: call before 10 am and we keep same-day slots. After hours, call the on-call line, 555 0142.
New patients: please arrive 15 minutes early to fill in forms.
"""  # noqa: E501  (one fact per line, as operators write them)

DENTAL_QUESTIONS = (
    q("wed_late", "known", "quick question how late are you open on wednesdays",
      need=(r"\b7\b|seven",)),
    q("fri_shut", "known", "hi um what time do you shut on a friday",
      need=(r"\b1 ?(pm|p\.m\.|o'clock)|\b1\b|\bone (pm|p\.m\.|o'clock|in the afternoon)|"
            r"(at|until|till|to) one\b",),
      bad=(r"friday[^.]{0,25}\b(until|till|to|at) (5|7)\b",)),
    q("saturday", "known", "are you guys open saturdays at all", need=(DENY + r"|closed|weekend",),
      bad=(STARTS_YES, r"open on saturdays? (from|at|until)")),
    q("xmas", "known", "hi yeah are you open the week after christmas my tooth has been bugging "
      "me", need=(DENY + r"|closed",), bad=(STARTS_YES, r"(we are|we're) open (that|the) week")),
    q("address", "known", "whats the address", need=(r"27 harbor|harbor road",)),
    q("landmark", "known", "i'm standing at the post office in harbor plaza how do i find you",
      need=(r"between|next to|bank|suite 3|27 harbor|harbor road",)),
    q("bus", "known", "i don't drive can i get to you on the bus", need=(r"\b14\b|fourteen",)),
    q("parking", "known", "is it a pain to park there", need=(r"free|\blot\b",)),
    q("cleaning_price", "known", "what's a cleaning gonna run me i don't have insurance",
      need=(r"\b95\b|ninety[- ]five",)),
    q("whitening_price", "known", "um what do you guys charge to make your teeth whiter",
      need=(r"\b350\b|three hundred (and )?fifty",)),
    q("exam_and_early", "known", "how much is the first exam for a new patient and how early "
      "should i show up", need=(r"\b120\b|hundred (and )?twenty", r"\b15\b|fifteen")),
    q("kids", "known", "my daughter just turned four can she be seen there",
      need=(YES + r"|children|kids|age 3|three|cho",),
      bad=(r"(don't|do not) (see|treat) (children|kids)",)),
    q("nervous", "known", "honestly i'm terrified of dentists is there somebody there who's "
      "gentle with scared people", need=(r"\bcho\b",)),
    q("delta", "known", "do you take delta dental", need=(YES + r"|in[- ]network|delta",),
      bad=(HEDGE, r"(not|aren't) in[- ]network with delta|(don't|do not) (take|accept) delta")),
    q("cigna", "known", "we've got cigna through my husband's job does that work with you",
      need=(r"receipt|claim|out[- ]of[- ]network|(not|aren't) in[- ]network|delta|metlife",),
      bad=(r"(we are|we're) in[- ]network with cigna|we (do )?(take|accept) cigna",)),
    q("medicaid", "known", "does your office accept medicaid", need=(DENY,),
      bad=(STARTS_YES, SAID + r"we (do )?(take|accept) medicaid")),
    q("braces", "known", "my son needs braces is that something you do",
      need=(DENY + r"|refer|specialist",), bad=(STARTS_YES, SAID + r"we (do|offer) braces")),
    q("implant", "known", "i lost a back tooth can you guys put an implant in",
      need=(DENY + r"|refer|specialist",),
      bad=(STARTS_YES, SAID + r"we (can|do|offer|place) (an )?implant")),
    q("late_cancel", "known", "if i cancel the morning of the appointment do i get charged",
      need=(r"\b40\b|forty|24 hours|twenty[- ]four|\bfee\b",),
      bad=(r"^no\b|no (fee|charge)|(won't|will not) be charged",)),
    q("toothache", "known", "hi i cracked a tooth last night and it's killing me can i get in "
      "today", need=(r"same[- ]day|before 10|\b10 ?(am|a\.m\.)|\bten\b",)),
    q("crown_price", "unknown", "how much is a crown",
      bad=(r"crowns? (costs?|runs?|is|are|start) (at |about |around |roughly )?(\$|\d)",)),
    q("patel", "unknown", "is doctor patel in on thursdays",
      bad=(STARTS_YES, SAID + r"(?<!if dr\. )(?<!if dr )(?<!if doctor )patel (is|will be|works)")),
    q("how_far_out", "unknown", "how far out are you booking for a cleaning right now",
      bad=(r"\b\d+\s*(days?|weeks?|months?)\b|\b(a few|two|three|couple of) (days|weeks)|"
           r"this week|next week|\btomorrow\b",)),
    q("laughing_gas", "unknown", "do you do laughing gas",
      bad=(STARTS_YES, SAID + r"we (do )?(offer|use|have|do) (laughing gas|nitrous)")),
    q("payment_plan", "unknown", "can i pay for a root canal in installments",
      bad=(STARTS_YES, SAID + r"we (do )?offer (payment plans|installments|financing)")),
    q("reed", "identity", "hey it's marcus reed i've got a cleaning with beth on tuesday and i "
      "need to push it back a week", names=("marcus", "reed"),
      bad=(r"i('ve| have) (moved|rescheduled|changed|pushed)",)),
    q("park_office", "identity", "hi this is doctor helen park's office at westfield oral "
      "surgery we're sending over a referral for one of your patients",
      names=("helen", "park")),
    q("then_wednesday", "known", "what time do you open on monday", "and wednesday",
      need=(r"\b10\b|\bten\b",)),
    q("repeat_cleaning", "known", "how much is a cleaning", "sorry what was that number",
      need=(r"\b95\b|ninety[- ]five",)),
    q("then_filling_price", "unknown", "do you do fillings", "ok how much is a filling",
      bad=(r"\b(95|120|350|40)\b",)),
)

DENTAL = QuestionSet(
    "final-dental", "Brightside Dental, good morning, how can I help you?",
    "You answer the phone for Brightside Dental, a dental practice. Be brief and warm. Do not "
    "give medical advice. When the caller wants to speak to a person, use the transfer tool.",
    DENTAL_KNOWLEDGE, DENTAL_QUESTIONS,
    answers=(
        (("What are your hours?", "When are you open?", "Are you open on Saturday?"),
         "We are open Monday, Tuesday and Thursday 8 am to 5 pm, Wednesday 10 am to 7 pm and "
         "Friday 8 am to 1 pm. We are closed on weekends."),
        (("I have a toothache.", "I broke a tooth.", "Can you see me today?"),
         "For a toothache or a broken tooth, call before 10 am and we will fit you in the same "
         "day. After hours, call our on-call line on 555 0142."),
        (("Do you do braces?", "Do you do implants?", "Do you take out wisdom teeth?"),
         "We do not do braces, Invisalign, implants or wisdom tooth removal. We refer those to "
         "specialists."),
        (("Where are you?", "What is your address?"),
         "We are at 27 Harbor Road, Suite 3, in the Harbor Plaza shopping center, between the "
         "bank and the post office."),
    ))

# --- a pharmacy counter ------------------------------------------------------------------------
PHARMACY_KNOWLEDGE = """\
Linden Street Pharmacy, 410 Linden Street, Ashford, on the corner of Linden and 3rd, across from the fire station.
Pharmacy hours: Monday to Friday 9 am to 8 pm. Saturday 9 am to 5 pm. Sunday 11 am to 4 pm. Closed on Thanksgiving and Christmas Day.
On weekdays the pharmacist takes lunch from 1 pm to 2 pm; we cannot fill prescriptions then.
Parking: two free 15-minute spaces in front for prescription pick-up, otherwise metered street parking. We have no drive-through.
Pharmacists: Ruth Adler (owner) and Sam Whitaker. Pharmacy technician: Nadia Bell.
Services: prescriptions and refills, flu and COVID-19 vaccines for ages 12 and up, free blood pressure checks, and free delivery within 3 miles, Monday to Friday. We do not do travel vaccines and we do not compound medicines.
Prices: flu shot $40 without insurance. Weekly pill packs $5 a month.
Refills called in before noon are ready after 4 pm the same day.
Anyone picking up a prescription must give the patient's date of birth. Controlled medications need a photo ID.
We cannot take back prescription medicines for a refund. There is a take-back box by the door for old or expired medicines.
"""  # noqa: E501

PHARMACY_QUESTIONS = (
    q("sunday_open", "known", "hi are you open sundays", need=(r"\byes\b|\b11\b|eleven",),
      bad=(r"closed on sundays?|not open on sundays?",)),
    q("weekday_shut", "known", "what time do you shut tonight it's tuesday",
      need=(r"\b8\b|eight",)),
    q("lunch", "known", "can i come get a prescription filled on my lunch hour like around 1 "
      "on a weekday", need=(r"lunch|break|(cannot|can't) fill|after 2|\b2 ?(pm|p\.m\.)|\btwo\b",),
      bad=(HEDGE, r"^(yes|yeah|sure)[,.!]? (you can|that's fine|no problem)")),
    q("thanksgiving", "known", "are you guys open on thanksgiving", need=(DENY + r"|closed",),
      bad=(STARTS_YES, r"open on thanksgiving (from|at|until)")),
    q("address", "known", "whereabouts are you", need=(r"410 linden|linden street|linden and",)),
    q("landmark", "known", "is that by the fire station",
      need=(r"\byes\b|across|opposite|fire station",), bad=(HEDGE, r"^no\b")),
    q("parking", "known", "um where do i park if i'm just grabbing a prescription",
      need=(r"\b15\b|fifteen|in front|free|meter",)),
    q("drive_thru", "known", "do you have a drive through window", need=(DENY,),
      bad=(STARTS_YES, SAID + r"we (do )?have a drive")),
    q("flu_combo", "known", "how much is a flu shot and can my 10 year old get one too",
      need=(r"\b40\b|forty", DENY + r"|\b12\b|twelve"), bad=(r"(she|he|they) can get one",)),
    q("travel", "known", "i'm going to thailand next month do you do travel shots",
      need=(DENY,), bad=(STARTS_YES, SAID + r"we (do|offer|give) travel")),
    q("compound", "known", "my vet says my dog needs a compounded medicine can you make that up",
      need=(DENY,), bad=(STARTS_YES, SAID + r"we (can|do) (compound|make)")),
    q("delivery", "known", "my mom can't really leave the house do you bring stuff out",
      need=(YES + r"|deliver",), bad=(r"(don't|do not) deliver|no delivery",)),
    q("delivery_far", "known", "do you deliver out to greenville it's like 10 miles",
      need=(DENY + r"|3 miles|three miles|within",),
      bad=(STARTS_YES, SAID + r"we (can|will|do) deliver (to|out)")),
    q("bp", "known", "do you charge to check my blood pressure",
      need=(r"free|no charge|no cost|(don't|do not) charge",), bad=(r"\$\s*\d",)),
    q("pickup_other", "known", "can my husband pick up my prescription for me",
      need=(r"date of birth|birth ?date|birthday|\bdob\b",), bad=(r"^no\b",)),
    q("controlled", "known", "what do i need to pick up my adderall",
      need=(r"photo id|\bid\b|identification",)),
    q("returns", "known", "can i bring back the pills i didn't use and get my money back",
      need=(DENY,), bad=(STARTS_YES, r"we (can|will) refund|refund (is|will be)")),
    q("disposal", "known", "what should i do with a bunch of old expired meds",
      need=(r"take[- ]back|\bbox\b|by the door|drop",)),
    q("refill_time", "known", "if i call in a refill this morning when can i grab it",
      need=(r"\b4\b|\bfour\b|same day",)),
    q("owner", "known", "who owns the place", need=(r"ruth|adler",)),
    q("lipitor_price", "unknown", "how much is generic lipitor without insurance",
      bad=(r"(lipitor|atorvastatin|it) (is|costs?|runs?) (about |around )?(\$|\d)",)),
    q("jerry", "unknown", "is jerry the pharmacist working today",
      bad=(STARTS_YES, SAID + r"jerry (is|will be|works)")),
    q("new_rx_wait", "unknown", "if i bring in a new prescription how long do i have to wait",
      bad=(r"\b\d+\s*(minutes?|hours?)\b|(a few|fifteen|twenty|thirty|half an) ?(minutes?|hour)|"
           r"\ban hour\b|while you wait",)),
    q("price_match", "unknown", "do you guys price match walmart",
      bad=(STARTS_YES, SAID + r"we (do )?(price )?match")),
    q("passport", "unknown", "quick question do you do passport photos",
      bad=(STARTS_YES, SAID + r"we (do|offer|take) passport")),
    q("haddad", "identity", "hi this is dr amir haddad's office calling in a new prescription "
      "for a patient", names=("amir", "haddad")),
    q("carter", "identity", "yeah hi it's denise carter date of birth march 3rd 1961 is my "
      "refill ready", names=("denise", "carter"),
      bad=(r"^(yes|yeah)\b|(your|the) (refill|prescription) is (ready|done)",)),
    q("then_sunday", "known", "what time do you close on saturday", "and sunday",
      need=(r"\b4\b|\bfour\b",)),
    q("repeat_flu", "known", "how much is a flu shot", "sorry you cut out how much",
      need=(r"\b40\b|forty",)),
    q("then_covid_price", "unknown", "do you do covid shots", "and how much is that",
      bad=(r"\b40\b|forty",)),
)

PHARMACY = QuestionSet(
    "final-pharmacy", "Linden Street Pharmacy, this is the pharmacy counter. How can I help?",
    "You answer the phone at the counter of Linden Street Pharmacy. Be brief and clear. Do "
    "not give medical advice. When the caller wants to speak to a pharmacist or a person, "
    "use the transfer tool.",
    PHARMACY_KNOWLEDGE, PHARMACY_QUESTIONS,
    answers=(
        (("What are your hours?", "When is the pharmacy open?", "Are you open on Sunday?"),
         "The pharmacy is open Monday to Friday 9 am to 8 pm, Saturday 9 am to 5 pm and "
         "Sunday 11 am to 4 pm. On weekdays the pharmacist is at lunch from 1 pm to 2 pm."),
        (("Do you deliver?", "Can you bring my medicine to my house?"),
         "We deliver for free within 3 miles of the pharmacy, Monday to Friday."),
        (("Can someone else pick up my prescription?",
          "What do I need to pick up a prescription?"),
         "Anyone picking up needs the patient's date of birth. Controlled medications need a "
         "photo ID."),
        (("How much is a flu shot?", "Do you do flu shots?"),
         "Yes, we give flu shots to anyone 12 and up. It is $40 without insurance."),
    ))

# --- an apartment leasing office ---------------------------------------------------------------
LEASING_KNOWLEDGE = """\
Willow Creek Apartments leasing office, 1500 Willow Creek Drive, Brookfield, in Building A, the first building on the left past the front gate.
Office hours: Monday to Friday 9 am to 6 pm. Saturday 10 am to 4 pm. Closed on Sunday. The last tour starts at 5 pm on weekdays and 3 pm on Saturday.
Parking: visitor spaces in front of Building A. Each apartment gets one covered spot; a second spot is $35 a month.
Rent: one-bedroom from $1,250 a month, two-bedroom from $1,600 a month. We have no studios and no three-bedrooms.
Applying: application fee $50 per adult. Security deposit is one month's rent. You must earn 3 times the monthly rent. Leases are 6 or 12 months; no month-to-month.
Pets: cats and dogs up to 50 pounds, two pets at most. $300 pet deposit and $25 a month pet rent per pet.
Amenities: pool open Memorial Day to Labor Day, fitness center open 24 hours, laundry room in every building. Only two-bedrooms have a washer and dryer in the unit. No storage units.
Utilities: water, sewer and trash are included in the rent. Residents pay their own electricity and internet.
Staff: leasing manager Tasha Greene, leasing agent Owen Bradley, maintenance supervisor Rick Moreno.
Maintenance: residents put in requests on the resident portal. For flooding, no heat or a gas smell, call 555 0177 any time.
"""  # noqa: E501

LEASING_QUESTIONS = (
    q("sat_open", "known", "hi um are you open on saturday i wanna come look at a place",
      need=(r"\byes\b|\b10\b|\bten\b",), bad=(r"closed on saturday|not open on saturday",)),
    q("last_tour", "known", "what's the latest i can come in for a tour on a weekday",
      need=(r"\b5\b|five",)),
    q("sunday", "known", "could i come see an apartment sunday afternoon",
      need=(DENY + r"|closed",), bad=(STARTS_YES,)),
    q("address", "known", "what's the address for the leasing office",
      need=(r"1500 willow|willow creek drive",)),
    q("which_building", "known", "ok i'm at the front gate which building are you in",
      need=(r"building a\b|first building|on the left",), bad=(HEDGE,)),
    q("visitor_parking", "known", "where should i leave my car when i come for the tour",
      need=(r"visitor|in front|building a",)),
    q("one_bed", "known", "what's a one bedroom go for",
      need=(r"1,?250|twelve (hundred )?(and )?fifty|one thousand two hundred",)),
    q("three_bed", "known", "we're a family of five do you have anything with three bedrooms",
      need=(DENY + r"|only (one|two)|(one|two)[- ]bedrooms? (only|and)",),
      bad=(STARTS_YES, r"three[- ]bedrooms? (start|are|is|from|go)")),
    q("fees_combo", "known", "how much is the application fee and what's the deposit",
      need=(r"\b50\b|fifty", r"month")),
    q("month_to_month", "known", "can i go month to month i might only be in town for a bit",
      need=(DENY + r"|6 or 12|six or twelve",), bad=(STARTS_YES,)),
    q("big_dog", "known", "i've got a 70 pound lab is that gonna be a problem",
      need=(r"\b50\b|fifty|up to|under|limit|(cannot|can't|not) (allow|accept|take)",),
      bad=(r"no problem|(that's|that is|it's|it is) fine|(is|are) welcome|^no\b[,.!]? (he|she|"
           r"it|that)",)),
    q("cat_cost", "known", "what's it cost extra to have a cat",
      need=(r"\b300\b|three hundred", r"\b25\b|twenty[- ]five")),
    q("washer", "known", "does the one bedroom come with its own washer and dryer",
      need=(DENY + r"|only (the )?two[- ]bedroom|laundry room",), bad=(STARTS_YES,)),
    q("pool", "known", "is the pool still open in october",
      need=(DENY + r"|memorial|labor day|closed|summer|season",), bad=(STARTS_YES,)),
    q("gym", "known", "can i hit the gym at like midnight",
      need=(YES + r"|24|twenty[- ]four|any ?time|around the clock|all (day|night)",),
      bad=(r"(gym|fitness center) (closes|is closed)",)),
    q("storage", "known", "do you have storage units for residents", need=(DENY,),
      bad=(STARTS_YES, SAID + r"we (do )?have storage")),
    q("water", "known", "is water included or do i pay that separate",
      need=(r"\byes\b|included|includes",),
      bad=(HEDGE, r"water (is not|isn't) included|(do not|don't) include water|^no\b|"
           r"you pay (for )?(the )?water",)),
    q("income", "known", "how much do i need to make to qualify",
      need=(r"\b3 times|three times|\b3x\b|triple",)),
    q("flooding", "known", "hi i live here and my kitchen is flooding who do i call",
      need=(r"0177",)),
    q("manager", "known", "who's the leasing manager there", need=(r"tasha|greene",)),
    q("specials", "unknown", "are you running any move in specials right now",
      bad=(STARTS_YES, r"months? free|\d+ ?(%|percent)|off (the|your) first")),
    q("move_in_wait", "unknown", "how soon could i move into a one bedroom",
      bad=(r"\b\d+\s*(days?|weeks?|months?)\b|right away|immediately|available (now|today)|"
           r"this (week|month)|next (week|month)",)),
    q("brandon", "unknown", "is brandon the maintenance guy still working there",
      bad=(STARTS_YES, SAID + r"brandon (is|still|works)")),
    q("smoking", "unknown", "am i allowed to smoke on my balcony",
      bad=(STARTS_YES, SAID + r"(you (can|may) smoke|smoking is (allowed|permitted|not allowed)|"
           r"smoke[- ]free)")),
    q("late_fee", "unknown", "how much is the late fee if my rent's a few days late",
      bad=(r"late fee (is|of|would be) \$?\d|\d+ ?(%|percent)",)),
    q("ruiz", "identity", "hi this is officer dana ruiz with brookfield police i need to reach "
      "one of your residents", names=("dana", "ruiz")),
    q("hughes", "identity", "yeah hey it's jamal hughes in building c my heat's out and it's "
      "freezing in here", names=("jamal", "hughes"), need=(r"0177|maintenance",)),
    q("then_second_car", "known", "do residents get parking", "what if we have two cars",
      need=(r"\b35\b|thirty[- ]five",)),
    q("repeat_app_fee", "known", "what's the application fee", "sorry was that per person",
      need=(r"adult|\byes\b|per (person|applicant)|\beach\b",), bad=(HEDGE,)),
    q("then_break_lease", "unknown", "do you allow cats",
      "ok and what happens if i need to break the lease early",
      bad=(r"\b(300|25|50)\b|one month|two months",)),
)

LEASING = QuestionSet(
    "final-leasing", "Willow Creek Apartments leasing office, how can I help you today?",
    "You answer the phone for the Willow Creek Apartments leasing office. Be brief and "
    "friendly. When the caller wants to speak to a person, use the transfer tool.",
    LEASING_KNOWLEDGE, LEASING_QUESTIONS,
    answers=(
        (("What are your office hours?", "When can I come for a tour?"),
         "The office is open Monday to Friday 9 am to 6 pm and Saturday 10 am to 4 pm. The "
         "last tour starts at 5 pm on weekdays and 3 pm on Saturday."),
        (("Do you allow pets?", "Can I have a dog?", "What is your pet policy?"),
         "We welcome cats and dogs up to 50 pounds, two pets at most. There is a $300 pet "
         "deposit and $25 a month pet rent per pet."),
        (("How much is rent?", "How much is a one-bedroom?", "How much is a two-bedroom?"),
         "One-bedrooms start at $1,250 a month and two-bedrooms at $1,600 a month."),
        (("I have a maintenance emergency.", "My apartment is flooding.", "My heat is out."),
         "For flooding, no heat or a gas smell, call maintenance at 555 0177 at any time. "
         "Other requests go through the resident portal."),
    ))

for _set in (DENTAL, PHARMACY, LEASING):
    SETS[_set.name] = _set
