# fedmsg-relay: active publishers (fedmsg-logger) connect to relay_inbound,
# the relay republishes on relay_outbound. This endpoints dict merges with
# the one of endpoints.py.
config = dict(
    endpoints={
        "relay_outbound": [
            "tcp://127.0.0.1:4001",
        ],
    },
    relay_inbound=[
        "tcp://127.0.0.1:2003",
    ],
)
