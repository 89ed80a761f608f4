"""python-jose verifies tokens with the ``cryptography`` backend only: the pure-Python ``ecdsa``
and ``rsa`` packages (slow, and ecdsa is not constant-time) are never reached."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import asyncio, sys, time

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("ecdsa", "rsa"):
                raise ImportError(f"{name} must not be imported")

    sys.meta_path.insert(0, Refuse())
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jose import jwk, jwt
    from ehr.security.jwks import StaticKeySet
    from ehr.security.tokens import TokenVerifier

    pem = lambda k: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    keys = {"ES256": pem(ec.generate_private_key(ec.SECP256R1())), "RS256": pem(rsa.generate_private_key(65537, 2048))}
    for alg, private in keys.items():
        key = jwk.construct(private, alg)
        public = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in key.public_key().to_dict().items()}
        verifier = TokenVerifier({"https://idp": StaticKeySet({"keys": [{**public, "kid": "k1"}]})}, "https://fhir")
        token = jwt.encode({"iss": "https://idp", "aud": "https://fhir", "sub": "u", "exp": int(time.time()) + 60},
                           key, algorithm=alg, headers={"kid": "k1"})
        assert asyncio.run(verifier.verify(token))["sub"] == "u", alg
    assert not any(m.split(".")[0] in ("ecdsa", "rsa") for m in sys.modules), "a pure-Python backend was loaded"
    print("verified")
''')


def test_es256_and_rs256_verify_with_the_pure_python_backends_unimportable():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "verified"
