"""The access policy: hosts, networks, names, users, IPv4-mapped addresses, defaults."""

import pytest

from epics_collector.core import AccessPolicy, Operation
from epics_collector.core._access import own_addresses

R, C, F, B = Operation.READ, Operation.CONTROL, Operation.FEEDBACK, Operation.FACTORY


def test_the_default_lets_anyone_read_and_only_this_host_do_more() -> None:
    policy = AccessPolicy()
    for op in (C, F, B):
        assert policy.allows(op, "127.0.0.1") and policy.allows(op, "::1")
        assert policy.allows(op, "::ffff:127.0.0.1")
        for own in own_addresses():  # this host's own interfaces count as this host
            assert policy.allows(op, str(own))
        assert not policy.allows(op, "10.0.0.2") and not policy.allows(op, "")
    assert policy.allows(R, "10.0.0.2")


def test_networks_names_and_users() -> None:
    policy = AccessPolicy(
        control=["10.1.0.0/16", "self", "operator@*"],
        feedback=["alice@10.1.2.3"],
        read=["::ffff:10.9.0.0/112"],
    )
    assert policy.allows(C, "10.1.7.7") and policy.allows(C, "::ffff:10.1.7.7")
    assert not policy.allows(C, "10.2.0.1")
    assert policy.allows(C, "192.0.2.9", "operator")  # that user from anywhere
    assert policy.allows(F, "10.1.2.3", "alice") and not policy.allows(F, "10.1.2.3", "bob")
    assert policy.allows(R, "10.9.0.5") and not policy.allows(R, "10.8.0.5")


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "no-such-host.invalid", "a\nb"])
def test_bad_entries_are_config_errors(entry: str) -> None:
    with pytest.raises(ValueError):
        AccessPolicy(control=[entry])


def test_a_refusal_names_an_ipv4_mapped_peer_by_its_ipv4_address() -> None:
    from epics_collector.core._access import refusal

    text = str(refusal(Operation.CONTROL, "put to Start", "::ffff:198.18.1.2", "root"))
    assert "root@198.18.1.2 may not" in text
    assert "root@fe80::1 may not" in str(refusal(Operation.CONTROL, "put", "fe80::1", "root"))
