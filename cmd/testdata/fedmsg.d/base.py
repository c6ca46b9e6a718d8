# Core settings of a fedmsg.d, in Python as Python fedmsg reads them
# (written for gofedmsg's `fedmsg config convert` tests; spec §12.1).
config = dict(
    # Topics are <topic_prefix>.<environment>.<modname>.<topic>.
    topic_prefix="org.fedoraproject",
    environment="dev",

    # ZeroMQ context and socket settings.
    io_threads=1,
    post_init_sleep=0.5,
    high_water_mark=0,  # 0: no limit
    zmq_linger=1000,  # milliseconds

    zmq_enabled=True,
    zmq_strict=False,

    # TCP keepalive on every ZeroMQ socket.
    zmq_tcp_keepalive=1,
    zmq_tcp_keepalive_cnt=3,
    zmq_tcp_keepalive_idle=60,
    zmq_tcp_keepalive_intvl=5,

    # Reconnection of SUB sockets, milliseconds.
    zmq_reconnect_ivl=100,
    zmq_reconnect_ivl_max=1000,
)
