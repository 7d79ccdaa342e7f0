"""The agents of the sandbox appliance (``switchboard bench --sandbox``, the tests): one for
each behaviour measured or tested, routed by extension in ``sandbox.SITE_YAML``."""

AGENT_YAML = """\
name: demo
language: en
greeting: Hello, you have reached the test agent.
instructions: >
  You answer the phone for Oakwood Pharmacy. The pharmacy opens at nine in the morning on
  Saturdays and closes at one. Answer in one short sentence.
"""


# A business as it is set up to answer: what it knows, in its own words. The bench's
# questions are mostly about these facts (one is not: "I don't know" from the cache).
FRONTDESK_AGENT_YAML = """\
name: frontdesk
greeting: Oakwood Pharmacy, how can I help?
instructions: You answer the phone for Oakwood Pharmacy. Answer in one short sentence.
knowledge: |
  Opening hours: Monday to Friday 8 am to 6 pm, Saturday 9 am to 1 pm, closed on Sunday.
  Public holidays: the pharmacy is closed on public holidays.
  Prescriptions: a new prescription is ready to pick up two hours after your doctor sends it.
  Refills: a refill takes one working day; we text you when it is ready.
  Flu shots: flu shots are given without an appointment during opening hours.
  Insurance: we accept Blue Cross, Aetna, Cigna and Medicare.
  Parking: park for free in the lot behind the pharmacy.
"""


TALKER_AGENT_YAML = """\
name: talker
greeting: Hello.
instructions: >
  You are the chatty phone assistant of Oakwood Pharmacy. Always answer with at least five
  long sentences about the pharmacy, its opening hours, its services and its staff.
barge_in:
  enabled: true
  min_speech: 0.2
"""


QUIET_AGENT_YAML = """\
name: quiet
greeting: Hello.
instructions: Answer in one short sentence.
limits:
  silence_timeout: 3
  reprompt: Are you still there?
goodbye: Goodbye.
"""


RECEPTION_AGENT_YAML = """\
name: reception
greeting: Oakwood Pharmacy, how can I help?
instructions: You answer the phone for Oakwood Pharmacy. Answer in one short sentence.
tools:
  - name: transfer
    builtin: transfer
    description: Put the caller through to a person at the front desk.
    targets:
      front desk: "102"
  - name: order_status
    description: Look up the delivery status of an order by its order number.
    parameters:
      type: object
      properties:
        order_number: {{type: string, description: the order number}}
      required: [order_number]
    webhook:
      url: http://127.0.0.1:{plan.tool_server}/orders
      timeout: 1.0
      retries: 1
      secret_file: secrets/tools.key
    result_phrase: Your order has {{status}} and arrives on {{arrives}}.
    failure_phrase: Sorry, the order system is not answering right now.
  - name: account_balance
    description: Tell the caller the balance of their account.
    parameters:
      type: object
      properties:
        account: {{type: string}}
      required: [account]
    dtmf:
      parameter: account
      prompt: Please enter your account number, then press hash.
      timeout: 6
    webhook:
      url: http://127.0.0.1:{plan.tool_server}/balance
      secret_file: secrets/tools.key
    failure_phrase: Sorry, I cannot look up balances right now.
"""


CONCIERGE_AGENT_YAML = """\
name: concierge
greeting: Hello, concierge desk.
instructions: You answer the phone for Oakwood Pharmacy. Answer in one short sentence.
tools:
  - name: transfer
    builtin: transfer
    mode: attended
    description: Put the caller through to a person at the front desk.
    targets:
      front desk: "102"
    wait_phrase: One moment, I will see if someone is free.
    failure_phrase: Sorry, nobody at the front desk is answering. Can I help you instead?
"""


REMINDER_AGENT_YAML = """\
name: reminder
greeting: Hello {name}, Oakwood Pharmacy calling about your appointment on {appointment}.
instructions: You call patients of Oakwood Pharmacy to confirm their appointment. Answer in
  one short sentence.
outbound:
  disclosure: This is an automated call.
  machine: voicemail
  voicemail_message: Hello {name}, please call Oakwood Pharmacy back about your appointment.
"""


BRIEF_AGENT_YAML = """\
name: brief
greeting: This agent hangs up after five seconds.
limits:
  max_call_seconds: 5
"""
