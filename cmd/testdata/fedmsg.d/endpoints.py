# Where subscribers connect: the public Fedora hub.
import socket

hostname = socket.gethostname().split(".", 1)[0]

config = dict(
    endpoints={
        # A tuple, as such files often have: it becomes a list.
        "fedora-infrastructure": (
            "tcp://hub.fedoraproject.org:9940",
        ),
    },
    # The gateway republishes on this port.
    **{
        "fedmsg.consumers.gateway.port": 9940,
        "fedmsg.consumers.gateway.high_water_mark": 10000,
    }
)
