"""Held-out question sets for ``switchboard eval answers``: a vet, a law firm's front desk and
a car repair shop, written as callers ask (phone-transcript style) and never used to tune the
answering rules, so their pass rates measure rather than confirm."""

from __future__ import annotations

from appliance.bench.answer_questions import DONT_KNOW_TEXT, NO, SETS, YES, QuestionSet, q

STARTS_YES = r"^(yes|yeah|sure|of course|absolutely)\b"
DURATION = (r"\b\d+\s*(minutes?|hours?|days?|weeks?|months?)\b|same[- ]day|next[- ]day|"
            r"\btoday\b|\btomorrow\b|\b(a few|two|three|couple of) (days|weeks|hours)")

# --- a veterinary clinic ---------------------------------------------------------------------
VET_KNOWLEDGE = """\
Riverside Animal Hospital, 318 Cedar Avenue, Oakdale, across the road from the main entrance of Riverside Park.
Hours: Monday to Friday 8 am to 7 pm. Saturday 9 am to 2 pm. Closed on Sunday.
Parking: free parking lot in front of the clinic. Please keep dogs on a leash in the lot.
We treat dogs, cats, rabbits and guinea pigs. We do not treat birds, reptiles or horses.
Services: vaccinations, wellness check-ups, spaying and neutering, dental cleaning, microchipping and X-rays. No grooming and no boarding.
Prices: wellness exam $65. Rabies vaccine $25. Microchip $45 including registration.
Veterinarians: Dr. Emily Novak (surgery) and Dr. Marcus Webb (dentistry). Practice manager: Linda Torres.
New clients: please bring your pet's previous vaccination records. We take cash and all major cards; payment is due at the visit.
After-hours emergencies: call Oakdale Emergency Vet on 555 0199, open 24 hours.
"""  # noqa: E501  (one fact per line, as operators write them)

VET_QUESTIONS = (
    q("sat_open", "known", "hi um are you guys open saturdays",
      need=(r"\byes\b|\b9\b|nine",), bad=(r"closed on saturday|not open on saturday",)),
    q("thu_close", "known", "what time do you close on thursday's",
      need=(r"\b7\b|seven",), bad=(r"\b(5|6|8) ?pm",)),
    q("sunday", "known", "you open on sunday at all", need=(NO + "|closed",),
      bad=(STARTS_YES, r"open on sundays? (from|at)")),
    q("address", "known", "whats your address", need=(r"318 cedar|cedar avenue",)),
    q("landmark", "known", "i'm coming from riverside park how do i find you",
      need=(r"across|opposite|318 cedar|cedar avenue|main entrance",)),
    q("parking", "known", "is there somewhere i can park when i bring my dog in",
      need=(r"\blot\b|free|in front",)),
    q("rabbit", "known", "hello I was wondering do you see rabbits", need=(YES + "|rabbits",),
      bad=(r"(don't|do not|not) (see|treat) rabbits",)),
    q("parrot", "known", "my parrot has been coughing for two days can you see him",
      need=(NO + r"|birds",), bad=(STARTS_YES, r"we (can|will) see (him|your parrot)")),
    q("grooming", "known", "can i book my poodle in for a groom", need=(NO + r"|no grooming",),
      bad=(STARTS_YES, r"we (do|offer) grooming")),
    q("boarding", "known", "we're going away next week could she stay with you for a few days",
      need=(NO + r"|boarding",), bad=(STARTS_YES, r"she can stay")),
    q("chip_price", "known", "how much to get a puppy microchipped",
      need=(r"\b45\b|forty[- ]five",)),
    q("exam_price", "known", "what do you charge for just a regular checkup",
      need=(r"\b65\b|sixty[- ]five",)),
    q("two_prices", "known", "ok so how much is the rabies shot and the exam together like each",
      need=(r"\b25\b|twenty[- ]five", r"\b65\b|sixty[- ]five")),
    q("surgeon", "known", "which of your vets does the surgery", need=(r"novak",),
      bad=(r"webb (does|is) (the )?surg",)),
    q("teeth", "known", "my cat's teeth are really bad do you do dental cleanings",
      need=(YES + r"|dental|webb",), bad=(r"(don't|do not) (do|offer) dental",)),
    q("first_visit", "known", "its our first time coming to you what should i bring",
      need=(r"vaccination|records",)),
    q("cash", "known", "can i pay in cash", need=(YES + r"|cash",),
      bad=(r"(don't|do not) (take|accept) cash",)),
    q("emergency", "known", "it's late at night and my dog just ate a whole bar of chocolate "
      "what do i do", need=(r"emergency|0199",)),
    q("sat_park", "known", "what time do you open saturday and where do i park",
      need=(r"\b9\b|nine", r"\blot\b|free|in front")),
    q("ferret", "known", "do you treat ferrets",  # not on the list of animals treated
      need=(DONT_KNOW_TEXT + r"|dogs.*guinea pigs|rabbits and guinea|" + NO,),
      bad=(STARTS_YES, r"we (do )?treat ferrets")),
    q("spay_price", "unknown", "how much does it cost to get a cat spayed"),
    q("pet_insurance", "unknown", "do you take pet insurance like trupanion",
      bad=(STARTS_YES, r"we (do )?(accept|take) (trupanion|pet insurance)")),
    q("same_day", "unknown", "hi yeah my dog is limping is there any chance of getting seen "
      "today", bad=(STARTS_YES, r"we can see (him|her|you) (today|this)|"
                    r"\b\d+\s*(minutes?|hours?)\b")),
    q("hoffman", "unknown", "is doctor hoffman working today",
      bad=(STARTS_YES, r"hoffman (is|will be)")),
    q("house_call", "unknown", "do you do house calls my cat hates the car",
      bad=(STARTS_YES, r"we (do|offer|make) house calls")),
    q("brooks", "identity", "hi this is dr alan brooks calling from hillcrest animal clinic "
      "about a patient of yours", names=("alan", "brooks")),
    q("kevin", "identity", "yeah hi my name's kevin walsh my dog buster is booked in thursday "
      "and i need to move it", names=("kevin", "walsh", "buster"),
      bad=(r"i('ve| have) (moved|rescheduled|changed)",)),
    q("then_saturday", "known", "what time do you close on friday", "and on saturday",
      need=(r"\b2\b|two",)),
    q("repeat_chip", "known", "how much is a microchip",
      "sorry the line is bad how much did you say", need=(r"\b45\b|forty[- ]five",)),
    q("then_dental_price", "unknown", "do you do dental cleaning for dogs",
      "ok and how much does that cost", bad=(STARTS_YES,)),
)

VET = QuestionSet(
    "vet", "Riverside Animal Hospital, good morning. How can I help?",
    "You answer the phone for Riverside Animal Hospital, a veterinary clinic. Be brief and "
    "kind. When the caller wants to speak to a person, use the transfer tool.",
    VET_KNOWLEDGE, VET_QUESTIONS,
    answers=(
        (("What are your opening hours?", "When are you open?", "Are you open on Saturday?"),
         "We are open Monday to Friday 8 am to 7 pm and Saturday 9 am to 2 pm. "
         "We are closed on Sunday."),
        (("What do I do in an emergency?", "My pet needs help now and you are closed."),
         "For an emergency after hours, please call Oakdale Emergency Vet on 555 0199. "
         "They are open 24 hours."),
        (("Where are you?", "What is your address?", "Where do I park?"),
         "We are at 318 Cedar Avenue, across from Riverside Park, with a free lot in front."),
    ))

# --- a small law firm's front desk -------------------------------------------------------------
LAW_KNOWLEDGE = """\
Harlow & Pierce, attorneys at law, 1200 Market Street, Suite 410, Fairview. Fourth floor; the elevators are past the security desk.
Office hours: Monday to Friday 9 am to 5 pm. Closed on weekends and public holidays.
Parking: paid garage under the building, entrance on 12th Street. We validate parking for clients for up to two hours.
Practice areas: family law (divorce, custody, adoption), wills and estates, and real estate closings. We do not handle criminal cases, immigration or personal injury.
Attorneys: Margaret Harlow (family law) and Daniel Pierce (wills, estates and real estate). Paralegal: Priya Shah. Office manager: Tom Reyes.
First consultation: 30 minutes, $150, credited toward your fee if you hire us. Simple will: flat fee of $600.
Consultations are by appointment only, no walk-ins. They can be in person or by video call.
We cannot give legal advice over the phone. Please bring any court papers, contracts or letters about your matter to the consultation.
"""  # noqa: E501

LAW_QUESTIONS = (
    q("hours", "known", "hi what are your hours", need=(r"\b9\b|nine", r"\b5\b|five")),
    q("saturday", "known", "could i come in saturday morning", need=(NO + r"|weekend",),
      bad=(STARTS_YES, r"(we are|we're) open on saturday")),
    q("address", "known", "where's your office", need=(r"1200 market|market street",)),
    q("floor", "known", "um what floor are you guys on", need=(r"fourth|\b4th\b|410",)),
    q("parking", "known", "where do i park when i come in for my appointment",
      need=(r"garage|12th",)),
    q("validate", "known", "do you validate parking", need=(YES + r"|validate|two hours",),
      bad=(r"(don't|do not) validate",)),
    q("divorce", "known", "i'm going through a divorce is that something you can help with",
      need=(YES + r"|family law|harlow",), bad=(r"(don't|do not) handle (divorce|family)",)),
    q("criminal", "known", "my son got arrested last night can one of your lawyers represent "
      "him", need=(NO + r"|criminal",), bad=(STARTS_YES, r"we can represent")),
    q("green_card", "known", "i need help with my green card application",
      need=(NO + r"|immigration",), bad=(STARTS_YES, r"we (can|do) help with (your )?green")),
    q("car_accident", "known", "i got rear ended last week and i want to sue the other driver",
      need=(NO + r"|personal injury",), bad=(STARTS_YES,)),
    q("consult_price", "known", "how much is it for the first meeting with a lawyer",
      need=(r"\b150\b|hundred and fifty|hundred fifty",)),
    q("will_price", "known", "what do you charge for a simple will",
      need=(r"\b600\b|six hundred",)),
    q("estate_who", "known", "who would i talk to about my mom's estate", need=(r"pierce",)),
    q("custody_who", "known", "which attorney does custody cases", need=(r"harlow",),
      bad=(r"pierce (does|handles) custody",)),
    q("video", "known", "do i have to come in or can we do it over zoom",
      need=(YES + r"|video",),
      bad=(r"in person only|must come in|(don't|do not) (do|offer) video",)),
    q("walk_in", "known", "can i just stop by this afternoon and talk to somebody",
      need=(NO + r"|appointment|walk-?ins",), bad=(STARTS_YES,)),
    q("advice", "known", "quick question can my ex move our kids out of state without asking "
      "me", need=(r"legal advice|consultation|attorney|lawyer|" + DONT_KNOW_TEXT,),
      bad=(r"^yes\b|(your ex|he|she|they) (can|cannot|can't|is not allowed|needs|must)",)),
    q("bring", "known", "what should i bring to the consultation",
      need=(r"court papers|contracts|letters|papers|documents",)),
    q("price_and_video", "known", "how much is the consult and can it be on video",
      need=(r"\b150\b|hundred and fifty|hundred fifty", YES + r"|video")),
    q("bankruptcy", "known", "do you handle bankruptcy",  # not among the practice areas
      need=(DONT_KNOW_TEXT + r"|family law|wills|" + NO,),
      bad=(STARTS_YES, r"we (do )?handle bankruptcy")),
    q("hourly", "unknown", "what's mr pierce's hourly rate"),
    q("payment_plan", "unknown", "do you guys do payment plans",
      bad=(STARTS_YES, r"we (do )?offer payment plans")),
    q("spanish", "unknown", "is there anyone there who speaks spanish",
      bad=(STARTS_YES, r"speaks? spanish")),
    q("rosen", "unknown", "is attorney rosen in today", bad=(STARTS_YES, r"rosen (is|will be)")),
    q("how_soon", "unknown", "how soon could i get a consultation i have a court date on the "
      "14th", bad=(DURATION, r"this week|next week")),
    q("kim", "identity", "hello this is attorney rachel kim from kim and associates returning "
      "margaret harlow's call", names=("rachel", "kim")),
    q("chen", "identity", "yes hi my name is david chen my wife already filed and i want to "
      "know what my next step is", names=("david", "chen"),
      bad=(r"your next step is",)),
    q("then_floor", "known", "where are you located", "and what floor is that",
      need=(r"fourth|\b4th\b|410",)),
    q("repeat_consult", "known", "how much is the first consultation", "sorry how much was that",
      need=(r"\b150\b|hundred and fifty|hundred fifty",)),
    q("then_closing_price", "unknown", "who handles real estate closings",
      "and how much does he charge for a closing", bad=(r"\b600\b|six hundred",)),
)

LAW = QuestionSet(
    "lawfirm", "Harlow and Pierce, good afternoon. How may I help you?",
    "You answer the front desk phone for Harlow & Pierce, a small law firm. Be brief and "
    "polite. Never give legal advice. When the caller wants to speak to a person, use the "
    "transfer tool.",
    LAW_KNOWLEDGE, LAW_QUESTIONS,
    answers=(
        (("How much is a consultation?", "What does the first meeting cost?"),
         "The first consultation is 30 minutes and costs $150, which is credited toward your "
         "fee if you hire us."),
        (("What are your office hours?", "When are you open?"),
         "We are open Monday to Friday, 9 am to 5 pm."),
        (("Do you take criminal cases?", "Do you do immigration?",
          "Do you handle personal injury?"),
         "We do not handle criminal cases, immigration or personal injury. We handle family "
         "law, wills and estates, and real estate closings."),
        (("Can I walk in?", "Do I need an appointment?"),
         "Consultations are by appointment only. They can be in person or by video call."),
    ))

# --- a car repair shop -------------------------------------------------------------------------
GARAGE_KNOWLEDGE = """\
Dawson Auto Repair, 85 Industrial Way, Millbrook, next to the Shell gas station.
Hours: Monday to Friday 7 am to 6 pm. Saturday 8 am to 12 pm. Closed on Sunday.
Prices: standard oil change $49.95. Tire rotation $25. Check engine light diagnostic $89, taken off the repair bill if we do the repair.
Services: oil changes, brakes, tires, batteries, engine diagnostics, air conditioning and state inspections. No body work or paint, and no motorcycles.
We work on most cars and light trucks, including hybrids. No diesel trucks.
Owner: Mike Dawson. Service advisor: Jenny Alvarez. Head mechanic: Luis Ortega.
Early drop-off: the key drop box is by the front door. Free shuttle ride within 5 miles of the shop.
Payment: cash and all major credit cards, no checks. Repairs have a 12 month or 12,000 mile warranty.
Oil changes are first come, first served; all other work by appointment.
"""  # noqa: E501

GARAGE_QUESTIONS = (
    q("open_time", "known", "hey what time do you guys open in the morning",
      need=(r"\b7\b|seven",)),
    q("saturday", "known", "you open saturday", need=(r"\byes\b|\b8\b|eight",),
      bad=(r"closed on saturday|not open on saturday",)),
    q("sunday", "known", "can i bring my car in on sunday", need=(NO + r"|closed",),
      bad=(STARTS_YES,)),
    q("address", "known", "where are you at", need=(r"85 industrial|industrial way",)),
    q("shell", "known", "is that near the shell station", need=(r"\byes\b|next to|shell",),
      bad=(r"^no\b",)),
    q("oil_price", "known", "how much for an oil change", need=(r"\b49\b|forty[- ]nine",)),
    q("cel_price", "known", "my check engine light came on how much is it just to look at it",
      need=(r"\b89\b|eighty[- ]nine",)),
    q("cel_credit", "known", "if you find the problem and fix it do i still have to pay the "
      "diagnostic fee", need=(r"taken off|off the (repair )?bill|credit|deduct|"
                              r"appl(y|ied|ies)|waive|(don't|do not|won't) (have to )?pay",)),
    q("motorcycle", "known", "do you work on motorcycles", need=(NO + r"|no motorcycles",),
      bad=(STARTS_YES,)),
    q("dent", "known", "someone backed into me and dented my door can you fix that",
      need=(NO + r"|body work",), bad=(STARTS_YES,)),
    q("diesel", "known", "i have an f250 diesel can you do the brakes on it",
      need=(NO + r"|diesel",), bad=(STARTS_YES,)),
    q("hybrid", "known", "do you work on hybrids like a prius", need=(YES + r"|hybrids",),
      bad=(r"(don't|do not) work on hybrids",)),
    q("ac", "known", "my ac is blowing warm air is that something you guys fix",
      need=(YES + r"|air conditioning",),
      bad=(r"(don't|do not) (fix|do|work on) (air|a/?c)",)),
    q("oil_appt", "known", "do i need an appointment for an oil change",
      need=(NO + r"|first come",), bad=(STARTS_YES,)),
    q("drop_off", "known", "can i drop my car off before you open i start work at 6 am",
      need=(r"drop box|key|\byes\b",)),
    q("shuttle", "known", "can someone give me a ride to my office while it's in the shop "
      "it's about 3 miles away", need=(YES + r"|shuttle",),
      bad=(r"(don't|do not) (have|offer) (a )?shuttle|no shuttle",)),
    q("check", "known", "can i pay with a check", need=(NO + r"|no checks",),
      bad=(STARTS_YES,)),
    q("warranty", "known", "what kind of warranty do you give on repairs",
      need=(r"12 month|12,000|twelve|12000|a year|one year",)),
    q("mechanic", "known", "who's your head mechanic", need=(r"ortega|luis",)),
    q("oil_and_sat", "known", "how much is an oil change and are you open saturday",
      need=(r"\b49\b|forty[- ]nine", r"\byes\b|\b8\b|eight|saturday")),
    q("brake_price", "unknown", "how much for new brake pads on a honda civic"),
    q("timing_belt", "unknown", "how long does it take to replace a timing belt",
      bad=(DURATION,)),
    q("loaner", "unknown", "do you have loaner cars", bad=(STARTS_YES, r"loaners? (is|are)")),
    q("coupon", "unknown", "do you have any coupons or discounts going on right now",
      bad=(STARTS_YES, r"\d+ ?%|percent off")),
    q("tony", "unknown", "is tony there", bad=(STARTS_YES, r"tony (is|will be)")),
    q("mike", "identity", "hi this is mike i dropped off the silver camry yesterday is it ready",
      names=("mike",), bad=(r"^(yes|yeah)\b|(your|the) (car|camry) is (ready|done)",)),
    q("sandra", "identity", "hi my name is sandra lopez you did my brakes last month and now "
      "they're squeaking", names=("sandra", "lopez")),
    q("then_oil", "known", "how much is a tire rotation", "and an oil change",
      need=(r"\b49\b|forty[- ]nine",)),
    q("repeat_street", "known", "where are you located", "sorry you cut out what was the street",
      need=(r"industrial",)),
    q("then_brake_price", "unknown", "do you do brakes", "how much would that run me",
      bad=(r"\b(49|25|89)\b",)),
)

GARAGE = QuestionSet(
    "garage", "Dawson Auto Repair, this is the front desk. How can I help?",
    "You answer the phone for Dawson Auto Repair, a car repair shop. Be brief and friendly. "
    "When the caller wants to speak to a person, use the transfer tool.",
    GARAGE_KNOWLEDGE, GARAGE_QUESTIONS,
    answers=(
        (("What are your hours?", "When are you open?", "Are you open on weekends?"),
         "We are open Monday to Friday 7 am to 6 pm and Saturday 8 am to 12 pm. "
         "We are closed on Sunday."),
        (("Do I need an appointment for an oil change?", "Can I just come in for an oil change?"),
         "Oil changes are first come, first served. All other work is by appointment."),
        (("Where are you?", "What is your address?"),
         "We are at 85 Industrial Way in Millbrook, next to the Shell gas station."),
    ))

for _set in (VET, LAW, GARAGE):
    SETS[_set.name] = _set
