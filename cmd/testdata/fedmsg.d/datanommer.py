# Another application's settings in the shared fedmsg.d: datanommer stores
# every message in PostgreSQL. gofedmsg has no use for these keys.
config = {
    "datanommer.enabled": False,
    "datanommer.sqlalchemy.url": "postgresql://datanommer:NommerPw4711@db01.example.com/datanommer",
    "fmn.sqlalchemy.uri": "postgresql://fmn:FmnPw4711@db01.example.com/fmn",
}
