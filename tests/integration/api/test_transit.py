"""Transit through python3-hvac and raw HTTP: keys, encrypt/decrypt/rewrap (batch, context,
convergent, associated data), data keys, hmac, sign/verify (asn1 and jws), random, hash, and the
security properties: min_decryption_version, destroyed keys, encrypt-only tokens."""
import base64
import unittest

import hvac
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import ServerTestCase


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


class TransitTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root.sys.enable_secrets_engine("transit")
        cls.t = cls.root.secrets.transit

    def test_key_lifecycle(self):
        self.t.create_key("life")
        key = self.t.read_key("life")["data"]
        self.assertEqual(key["type"], "aes256-gcm96")
        self.assertEqual(key["latest_version"], 1)
        self.assertFalse(key["exportable"])
        self.assertTrue(key["supports_encryption"])
        self.t.rotate_key("life")
        self.assertEqual(self.t.read_key("life")["data"]["latest_version"], 2)
        self.assertIn("life", self.t.list_keys()["data"]["keys"])
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.t.delete_key("life")
        self.t.update_key_configuration("life", deletion_allowed=True)
        self.t.delete_key("life")
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.t.read_key("life")
        # Raw requests: hvac validates these client-side before sending.
        status, body, _ = self.server.request("POST", "transit/keys/bad", body={"type": "rot13"})
        self.assertErrors(status, body, 400)
        status, body, _ = self.server.request("POST", "transit/keys/bad", body={"exportable": True})
        self.assertErrors(status, body, 400)
        with self.assertRaises(hvac.exceptions.InvalidPath):
            self.t.read_key("bad")

    def test_encrypt_decrypt_rewrap(self):
        for key_type in ("aes256-gcm96", "chacha20-poly1305"):
            name = "ed-" + key_type
            self.t.create_key(name, key_type=key_type)
            ct = self.t.encrypt_data(name, b64("hello"))["data"]["ciphertext"]
            self.assertTrue(ct.startswith("vault:v1:"))
            self.assertEqual(base64.b64decode(self.t.decrypt_data(name, ct)["data"]["plaintext"]), b"hello")
            self.t.rotate_key(name)
            rewrapped = self.t.rewrap_data(name, ct)["data"]
            self.assertTrue(rewrapped["ciphertext"].startswith("vault:v2:"))
            self.assertNotIn("plaintext", rewrapped)
            self.assertEqual(base64.b64decode(self.t.decrypt_data(name, rewrapped["ciphertext"])["data"]["plaintext"]), b"hello")
        # The legacy test string: valid base64 that round-trips as-is.
        status, body, _ = self.server.request("POST", "transit/encrypt/ed-aes256-gcm96", body={"plaintext": "test"})
        status, body, _ = self.server.request("POST", "transit/decrypt/ed-aes256-gcm96",
                                              body={"ciphertext": body["data"]["ciphertext"]})
        self.assertEqual(body["data"]["plaintext"], "test")

    def test_decrypt_errors(self):
        self.t.create_key("errs")
        good = self.t.encrypt_data("errs", b64("x"))["data"]["ciphertext"]
        cases = {
            "nope": "invalid ciphertext: no prefix",
            "vault:v1": "invalid ciphertext: wrong number of fields",
            "vault:vX:abc": "invalid ciphertext: version number could not be decoded",
            "vault:v9:" + good.split(":")[2]: "invalid ciphertext: version is too new",
            "vault:v1:!!!": "invalid ciphertext: could not decode base64",
        }
        for ciphertext, message in cases.items():
            status, body, _ = self.server.request("POST", "transit/decrypt/errs", body={"ciphertext": ciphertext})
            self.assertErrors(status, body, 400, message)
        raw = bytearray(base64.b64decode(good.split(":")[2]))
        raw[-1] ^= 1
        status, body, _ = self.server.request("POST", "transit/decrypt/errs",
                                              body={"ciphertext": "vault:v1:" + b64(bytes(raw))})
        self.assertErrors(status, body, 400)
        self.t.create_key("other")
        status, body, _ = self.server.request("POST", "transit/decrypt/other", body={"ciphertext": good})
        self.assertErrors(status, body, 400)

    def test_batch(self):
        self.t.create_key("batch")
        items = [{"plaintext": b64("one"), "reference": "r1"}, {"plaintext": "%%%", "reference": "r2"},
                 {"plaintext": b64("three")}]
        status, body, _ = self.server.request("POST", "transit/encrypt/batch", body={"batch_input": items})
        self.assertEqual(status, 400)
        self.assertNotIn("errors", body)
        results = body["data"]["batch_results"]
        self.assertEqual([r.get("reference") for r in results], ["r1", "r2", ""])
        self.assertIn("error", results[1])
        self.assertTrue(results[0]["ciphertext"].startswith("vault:v1:"))
        status, body, _ = self.server.request("POST", "transit/encrypt/batch",
                                              body={"batch_input": items, "partial_failure_response_code": 207})
        self.assertEqual(status, 207)
        good = [{"ciphertext": results[0]["ciphertext"], "reference": "a"},
                {"ciphertext": results[2]["ciphertext"], "reference": "b"}]
        out = self.t.decrypt_data("batch", None, batch_input=good)["data"]["batch_results"]
        self.assertEqual([base64.b64decode(r["plaintext"]) for r in out], [b"one", b"three"])
        self.assertEqual([r["reference"] for r in out], ["a", "b"])
        status, body, _ = self.server.request("POST", "transit/encrypt/batch", body={"batch_input": []})
        self.assertErrors(status, body, 400, "missing batch input to process")

    def test_derived_and_convergent(self):
        self.t.create_key("derived", derived=True)
        ctx = b64("tenant-1")
        ct = self.t.encrypt_data("derived", b64("v"), context=ctx)["data"]["ciphertext"]
        self.assertEqual(base64.b64decode(self.t.decrypt_data("derived", ct, context=ctx)["data"]["plaintext"]), b"v")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.t.decrypt_data("derived", ct, context=b64("tenant-2"))
        status, body, _ = self.server.request("POST", "transit/encrypt/derived", body={"plaintext": b64("v")})
        self.assertErrors(status, body, 400, "missing 'context' for key derivation")
        self.t.create_key("conv", derived=True, convergent_encryption=True)
        a = self.t.encrypt_data("conv", b64("same"), context=ctx)["data"]["ciphertext"]
        b = self.t.encrypt_data("conv", b64("same"), context=ctx)["data"]["ciphertext"]
        c = self.t.encrypt_data("conv", b64("diff"), context=ctx)["data"]["ciphertext"]
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        status, body, _ = self.server.request("POST", "transit/keys/conv-bad",
                                              body={"convergent_encryption": True})
        self.assertErrors(status, body, 400, "convergent encryption requires derivation to be enabled")

    def test_associated_data(self):
        self.t.create_key("aad")
        status, body, _ = self.server.request("POST", "transit/encrypt/aad",
                                              body={"plaintext": b64("p"), "associated_data": b64("hdr")})
        ct = body["data"]["ciphertext"]
        status, body, _ = self.server.request("POST", "transit/decrypt/aad",
                                              body={"ciphertext": ct, "associated_data": b64("hdr")})
        self.assertEqual((status, base64.b64decode(body["data"]["plaintext"])), (200, b"p"))
        status, body, _ = self.server.request("POST", "transit/decrypt/aad",
                                              body={"ciphertext": ct, "associated_data": b64("other")})
        self.assertErrors(status, body, 400)

    def test_datakey_hmac_random_hash(self):
        self.t.create_key("dk")
        dk = self.t.generate_data_key("dk", "plaintext", bits=256)["data"]
        self.assertEqual(len(base64.b64decode(dk["plaintext"])), 32)
        self.assertEqual(self.t.decrypt_data("dk", dk["ciphertext"])["data"]["plaintext"], dk["plaintext"])
        wrapped = self.t.generate_data_key("dk", "wrapped")["data"]
        self.assertNotIn("plaintext", wrapped)
        status, body, _ = self.server.request("POST", "transit/datakey/plaintext/dk", body={"bits": 100})
        self.assertErrors(status, body, 400, "invalid bit length")
        status, body, _ = self.server.request("POST", "transit/datakey/both/dk", body={})
        self.assertErrors(status, body, 400)
        status, _, _ = self.server.request("POST", "transit/keys/mac", body={"type": "hmac"})
        self.assertIn(status, (200, 204))
        mac = self.t.generate_hmac("mac", b64("msg"))["data"]["hmac"]
        self.assertTrue(mac.startswith("vault:v1:"))
        self.assertTrue(self.t.verify_signed_data("mac", b64("msg"), hmac=mac)["data"]["valid"])
        self.assertFalse(self.t.verify_signed_data("mac", b64("msg2"), hmac=mac)["data"]["valid"])
        rnd = self.t.generate_random_bytes(n_bytes=16)["data"]["random_bytes"]
        self.assertEqual(len(base64.b64decode(rnd)), 16)
        digest = self.t.hash_data(b64("abc"), algorithm="sha2-256")["data"]["sum"]
        self.assertEqual(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")

    def test_sign_verify(self):
        self.t.create_key("p256", key_type="ecdsa-p256")
        self.t.create_key("ed", key_type="ed25519")
        for name in ("p256", "ed"):
            sig = self.t.sign_data(name, b64("payload"))["data"]["signature"]
            self.assertTrue(sig.startswith("vault:v1:"))
            self.assertTrue(self.t.verify_signed_data(name, b64("payload"), signature=sig)["data"]["valid"])
            self.assertFalse(self.t.verify_signed_data(name, b64("payload!"), signature=sig)["data"]["valid"])
        # The public key from read-key verifies the signature with python3-cryptography.
        key = self.t.read_key("p256")["data"]["keys"]["1"]
        public = serialization.load_pem_public_key(key["public_key"].encode())
        sig = self.t.sign_data("p256", b64("payload"))["data"]["signature"]
        public.verify(base64.b64decode(sig.split(":")[2]), b"payload", ec.ECDSA(hashes.SHA256()))
        jws = self.t.sign_data("p256", b64("payload"), marshaling_algorithm="jws")["data"]["signature"]
        self.assertTrue(self.t.verify_signed_data("p256", b64("payload"), signature=jws,
                                                  marshaling_algorithm="jws")["data"]["valid"])
        self.t.create_key("aes-nosign")
        with self.assertRaises(hvac.exceptions.InvalidRequest):
            self.t.sign_data("aes-nosign", b64("x"))

    def test_ecdsa_hash_algorithms_and_prehashed(self):
        self.t.create_key("p256-hashes", key_type="ecdsa-p256")
        key = self.t.read_key("p256-hashes")["data"]["keys"]["1"]
        public = serialization.load_pem_public_key(key["public_key"].encode())
        for name, hash_ in (("sha2-384", hashes.SHA384()), ("sha2-512", hashes.SHA512())):
            sig = self.t.sign_data("p256-hashes", b64("payload"), hash_algorithm=name)["data"]["signature"]
            public.verify(base64.b64decode(sig.split(":")[2]), b"payload", ec.ECDSA(hash_))
            self.assertTrue(self.t.verify_signed_data("p256-hashes", b64("payload"), signature=sig,
                                                      hash_algorithm=name)["data"]["valid"])
            self.assertFalse(self.t.verify_signed_data("p256-hashes", b64("payload"),
                                                       signature=sig)["data"]["valid"])
        # prehashed: the client hashes, the server signs that digest as given.
        digest = hashes.Hash(hashes.SHA384())
        digest.update(b"payload")
        prehashed = digest.finalize()
        sig = self.t.sign_data("p256-hashes", b64(prehashed), prehashed=True)["data"]["signature"]
        public.verify(base64.b64decode(sig.split(":")[2]), b"payload", ec.ECDSA(hashes.SHA384()))
        with self.assertRaises(hvac.exceptions.InvalidRequest):  # no hash is 65 bytes long
            self.t.sign_data("p256-hashes", b64(b"x" * 65), prehashed=True)

    def test_export_and_backup_refused(self):
        self.t.create_key("noexport")
        with self.assertRaises(hvac.exceptions.InternalServerError):
            self.t.backup_key("noexport")
        with self.assertRaises((hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError)):
            self.t.export_key("noexport", "encryption-key")

    def test_min_decryption_version_and_destroy(self):
        self.t.create_key("retire")
        old = self.t.encrypt_data("retire", b64("old"))["data"]["ciphertext"]
        self.t.rotate_key("retire")
        self.t.update_key_configuration("retire", min_decryption_version=2)
        status, body, _ = self.server.request("POST", "transit/decrypt/retire", body={"ciphertext": old})
        self.assertErrors(status, body, 400, "too old")
        self.t.create_key("doomed")
        ct = self.t.encrypt_data("doomed", b64("gone"))["data"]["ciphertext"]
        self.t.update_key_configuration("doomed", deletion_allowed=True)
        self.t.delete_key("doomed")
        self.t.create_key("doomed")
        status, body, _ = self.server.request("POST", "transit/decrypt/doomed", body={"ciphertext": ct})
        self.assertGreaterEqual(status, 400)
        self.assertNotIn("Z29uZQ==", str(body))

    def test_encrypt_only_token(self):
        self.t.create_key("k")
        self.root.sys.create_or_update_policy(
            "enc-only", 'path "transit/encrypt/k" { capabilities = ["update"] }\n'
                        'path "transit/encrypt/new-*" { capabilities = ["update"] }')
        token = self.root.auth.token.create(policies=["enc-only"], ttl="10m")["auth"]["client_token"]
        enc = self.server.client(token).secrets.transit
        ct = enc.encrypt_data("k", b64("secret"))["data"]["ciphertext"]
        with self.assertRaises(hvac.exceptions.Forbidden):
            enc.decrypt_data("k", ct)
        # Without "create", encrypt cannot upsert a missing key.
        with self.assertRaises(hvac.exceptions.Forbidden):
            enc.encrypt_data("new-key", b64("x"))
        # With root (create), it upserts.
        self.t.encrypt_data("upserted", b64("x"))
        self.assertEqual(self.t.read_key("upserted")["data"]["type"], "aes256-gcm96")


if __name__ == "__main__":
    unittest.main()
