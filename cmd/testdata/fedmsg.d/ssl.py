# Message signing (x509): keys and certificates under ssldir, one pair per
# service and host, named through certnames.
import os
import socket

SEP = os.path.sep
here = socket.gethostname().split(".", 1)[0]

config = dict(
    sign_messages=False,
    validate_signatures=True,

    crypto_backend="x509",
    crypto_validate_backends=["x509"],

    ssldir=SEP.join(["", "etc", "pki", "fedmsg"]),
    crl_location="https://fedoraproject.org/fedmsg/crl.pem",
    crl_cache="/var/run/fedmsg/crl.pem",
    crl_cache_expiry=3600,

    ca_cert_location="https://fedoraproject.org/fedmsg/ca.crt",
    ca_cert_cache=os.path.join("/var/run/fedmsg", "ca.crt"),
    ca_cert_cache_expiry=0,

    # <cert prefix>.<short host name> -> certificate name.
    certnames={
        "shell.%s" % here: "shell-%s" % here,
        "relay.{0}".format(here): "relay-" + here,
    },

    routing_policy={
        "org.fedoraproject.prod.announce.announcement": [
            "announce-lockbox.phx2.fedoraproject.org",
        ],
    },
    routing_nitpicky=False,
)
