"""Ablations of the routed sync get: which piece costs what (callgrind, one dump per variant)."""
import sys, functools
sys.path.insert(0, sys.argv[1] + "/benchmarks")
if len(sys.argv) > 4 and sys.argv[4] == "--child":
    import profile_paths as pp
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.orm import sessionmaker, Session
    import router, router.sqlalchemy as rsa
    from router.sqlalchemy import _session as S
    P, R = sys.argv[2], sys.argv[3]
    Item = pp.Item
    variants = sys.argv[5].split(",")
    def cfg():
        return router.RouterConfig(primary=router.NodeConfig(dsn=P, name="primary"),
            replicas=[router.NodeConfig(dsn=R, name="replica1")],
            pool=router.PoolConfig(min_size=1, max_size=2, connect_timeout=60), monitor_timeout=30.0, monitor_interval=60.0)
    for v in variants:
        name = v.split("@")[0]
        if name == "plain":
            f = sessionmaker(create_engine(make_url(R).set(drivername="postgresql+psycopg")))
        elif name == "plainev":  # plain engine with a handle_error listener
            e = create_engine(make_url(R).set(drivername="postgresql+psycopg"))
            event.listen(e, "handle_error", lambda ctx: None)
            f = sessionmaker(e)
        else:
            f = rsa.sessionmaker(cfg())
            eng = f.engines["replica1"]
            with f() as s: s.get(Item, 1)
            if "nocheckout" in name:
                for e in f.engines.values():
                    d = e.pool.dispatch.checkout
                    for fn in list(d): event.remove(e, "checkout", fn)
            if "noexec" in name:
                for e in f.engines.values():
                    for ev in ("do_execute", "do_executemany", "do_execute_no_params"):
                        for fn in list(getattr(e.dialect.dispatch, ev)): event.remove(e, ev, fn)
            if "noerr" in name:
                for e in f.engines.values():
                    e._has_events = False
            if "fixed" in name:
                f.class_.get_bind = lambda self, *a, **kw: eng
            if "noexecute" in name:
                f.class_.execute = Session.execute
            if "nate" in name and "@" not in v:
                event.remove(S.RoutedSession, "after_transaction_end", S._after_transaction_end)
                event.remove(S.RoutedSession, "after_commit", S._after_commit)
        def one(i):
            with f() as s:
                return s.get(Item, i % 1000 + 1)
        for i in range(100): one(i)
        functools.reduce(lambda acc, i: (one(i), acc)[1], range(200), 0)
    sys.exit(0)
from _report import callgrind_dumps
variants = sys.argv[4]
tot = callgrind_dumps(__file__, [sys.argv[1], sys.argv[2], sys.argv[3], "--child", variants])
for v, t in zip(variants.split(","), tot): print(f"{v:40s} {t/200:12,.0f}")
