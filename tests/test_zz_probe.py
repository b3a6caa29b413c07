import headless_client.records as rec
import tests.test_fuzz as tf

def old_in_domain(name, domain):
    n = (name.to_text() if not isinstance(name, str) else name).lower().rstrip(".")
    d = domain.lower().rstrip(".")
    return n == d or n.endswith("." + d)

def test_probe(monkeypatch):
    monkeypatch.setattr(rec, "is_host_name", lambda n: True)
    monkeypatch.setattr(rec, "in_domain", old_in_domain)
    tf.test_plans_with_mutated_replies_raise_only_documented_errors()
