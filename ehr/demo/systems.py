"""Identifier systems the synthetic data uses (Sijill's stable URIs)."""

SID = "https://fhir.sijill.ma/sid/"
CIN = SID + "cin"  # carte nationale d'identité
RNP = SID + "rnp"  # registre national de la population: digital civil id
RSU = SID + "rsu"  # registre social unifié: household
INPE = SID + "inpe"  # health professionals and facilities
PRESCRIPTION = SID + "prescription"
# A fund as an organisation (its acronym); distinct from the member-number systems below.
FUND_ID = SID + "fund"
MEMBER_SYSTEMS = {
    "cnss": SID + "cnss",
    "cnops": SID + "cnops",
    "amo-tadamon": SID + "amo-tadamon",
    "mutuelle": SID + "mutuelle",
}
