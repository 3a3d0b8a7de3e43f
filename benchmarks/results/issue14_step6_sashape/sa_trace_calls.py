"""Python-level calls of one routed vs plain session.get / select (sync), real cluster."""
import sys, collections, asyncio
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import profile_paths as pp
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker
import router, router.sqlalchemy as rsa
P, R = sys.argv[2], sys.argv[3]
op = sys.argv[4] if len(sys.argv) > 4 else "get"
config = router.RouterConfig(primary=router.NodeConfig(dsn=P, name="primary"),
    replicas=[router.NodeConfig(dsn=R, name="replica1")],
    pool=router.PoolConfig(min_size=1, max_size=2, connect_timeout=60), monitor_timeout=30.0, monitor_interval=60.0)
Item = pp.Item
url = make_url(R)
plain = sessionmaker(create_engine(url.set(drivername="postgresql+psycopg")))
routed = rsa.sessionmaker(config)
def one(f, i):
    with f() as s:
        if op == "get":
            return s.get(Item, i % 1000 + 1)
        a = i % 990 + 1
        return s.scalars(select(Item).where(Item.id.between(a, a + 9)).order_by(Item.id)).all()
for f in (plain, routed):
    for i in range(50): one(f, i)
def trace(f):
    calls = collections.Counter()
    def prof(frame, event, arg):
        if event == "call":
            c = frame.f_code
            calls[f"{c.co_filename.split('site-packages/')[-1].split('/src/')[-1]}:{c.co_name}"] += 1
    sys.setprofile(prof); one(f, 7); sys.setprofile(None)
    return calls
a, b = trace(plain), trace(routed)
print("plain", sum(a.values()), "routed", sum(b.values()))
for k in sorted(set(a) | set(b)):
    if a[k] != b[k]:
        print(f"{b[k]-a[k]:+4d}  {a[k]:3d} {b[k]:3d}  {k}")
routed.close()
