"""The stable URIs the care-sheet exchange reads and writes (one place, quoted in docs/claims.md)."""
SID = "https://fhir.sijill.ma/sid/"
CS = "https://fhir.sijill.ma/CodeSystem/"
SD = "https://fhir.sijill.ma/StructureDefinition/"

INPE = SID + "inpe"
CLAIM_NUMBER = SID + "claim"
PRESCRIPTION_NUMBER = SID + "prescription"
FUND = SID + "fund"  # a fund's acronym as an Organization identifier (CNSS, CNOPS, ...)
PAYMENT_NUMBER = SID + "payment"  # a PaymentReconciliation's number, quoted by the answers it pays
PREAUTH = SID + "preauthorization"  # numbers of the funds' attestations de prise en charge
STATUS_CODE = SID + "claim-status-code"  # the care sheet's status code (claims.messaging.status_code) on its answers
MEMBER_SYSTEMS = {SID + n for n in ("cnss", "cnops", "amo-tadamon", "mutuelle")}

# Code systems
ACTS = CS + "acte"  # the national nomenclature of acts (profiles/: C, CS, K3001, B1007…)
MEDICINE = CS + "medicament"  # medicine packs by EAN-13 (profiles/)
ATC = "http://www.whocc.no/atc"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ALD = CS + "ald"  # affections de longue durée / longues et coûteuses
REGIME = CS + "amo-regime"
ORG_KIND = CS + "organization-kind"
REASON = CS + "claim-adjudication-reason"
ADJUDICATION_EXTRA = CS + "adjudication"  # Sijill's adjudication categories beyond HL7's
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"
EX_PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"  # complete | partial (ClaimResponse.payment)
PAYEE_TYPE = "http://terminology.hl7.org/CodeSystem/payeetype"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
CLAIM_INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
RELATED_CLAIM_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"  # prior: a correction
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"

# Extensions
EXT_DEADLINE = SD + "claim-deadline"
EXT_RECEIVED = SD + "claim-received"
EXT_ESCALATED = SD + "claim-escalated"
EXT_RULESET = SD + "claim-ruleset-version"
EXT_DECIDED_BY = SD + "claim-decided-by"
EXT_SUPERSEDED_BY = SD + "claim-superseded-by"  # on a replaced answer: the correction (Claim, ClaimResponse)
EXT_COVERAGE_CLIFF = SD + "coverage-cliff"  # on a Coverage a registry feed ended: next regime, ALD transition
EXT_NEXT_STEP = SD + "coverage-next-step"  # on an eligibility answer: transition, next regime, what to do
RSU = CS + "rsu"  # index | threshold (RSU: registre social unifié)
HOUSEHOLD = SID + "rsu-household"
NOTIFICATION = CS + "notification"  # the event of a notification Communication (coverage-ending …)
EXT_APPEAL = SD + "claim-appeal"  # on an answer under or after appeal: status, dates, contested version
