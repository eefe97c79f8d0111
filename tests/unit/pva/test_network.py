from epics_collector.pva import Network


def test_loopback_pins_everything_to_127_0_0_1():
    net = Network.loopback()
    port = net.search_port
    assert port
    assert not net.useenv
    addresses = [v for k, v in net.variables.items() if "ADDR_LIST" in k and "AUTO" not in k]
    assert addresses and all(v.startswith("127.0.0.1") for v in addresses)
    assert net.client_conf()["EPICS_PVA_ADDR_LIST"] == f"127.0.0.1:{port}"
    assert net.client_conf()["EPICS_PVA_AUTO_ADDR_LIST"] == "NO"
    assert net.server_conf()["EPICS_PVAS_BROADCAST_PORT"] == str(port)
    assert net.server_conf()["EPICS_PVAS_AUTO_BEACON_ADDR_LIST"] == "NO"
    assert net.variables["EPICS_CA_AUTO_ADDR_LIST"] == "NO"


def test_ca_servers_get_their_own_ports_and_clients_search_all():
    net = Network.loopback(ca_servers=3)
    searched = net.variables["EPICS_CA_ADDR_LIST"].split()
    assert len(searched) == 3 and all(a.startswith("127.0.0.1:") for a in searched)
    ports = {net.for_ca_server(i).variables["EPICS_CAS_SERVER_PORT"] for i in range(3)}
    assert {f"127.0.0.1:{p}" for p in ports} == set(searched)


def test_each_run_gets_its_own_port():
    assert Network.loopback().variables != Network.loopback().variables


def test_child_environment_drops_inherited_epics_variables():
    net = Network.loopback()
    env = net.environ({"EPICS_PVA_NAME_SERVERS": "10.0.0.1", "PATH": "/bin"})
    assert "EPICS_PVA_NAME_SERVERS" not in env
    assert env["PATH"] == "/bin"
    assert env["EPICS_PVA_ADDR_LIST"] == net.variables["EPICS_PVA_ADDR_LIST"]


def test_production_honours_environment(monkeypatch):
    monkeypatch.setenv("EPICS_PVA_ADDR_LIST", "127.0.0.2")
    net = Network.from_environment()
    assert net.useenv
    assert net.client_conf()["EPICS_PVA_ADDR_LIST"] == "127.0.0.2"


def test_listening_ports_are_below_the_ephemeral_range() -> None:
    """A server port from the ephemeral range can be taken later as a source port."""
    import socket

    from epics_collector.pva import Network, listening_port
    from epics_collector.pva._network import _ephemeral_low

    low = _ephemeral_low()
    ports = [listening_port(socket.SOCK_STREAM) for _ in range(20)] + [listening_port()]
    assert all(10000 <= port < low for port in ports), ports
    network = Network.loopback()
    assert int(network.variables["EPICS_PVA_BROADCAST_PORT"]) < low
    assert int(network.variables["EPICS_CA_SERVER_PORT"]) < low
