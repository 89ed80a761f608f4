"""The adversarial suite: each role tries every way in and every way to write at what it must not
reach, over the scenario of ``tests/security/world.py`` (plus ``scenario.EXTRA``).

Every case is written to the behaviour issue 10 requires: an invisible resource answers 404 (403
where the role may not touch the type at all) exactly as a missing one, no answer carries
anything of it (its id, a name, an identifier), searches neither return nor count it, and a
refused write changes nothing in the database.  One world per module and backend; each test
walks all its cases for one role and lists every failing case.
"""
