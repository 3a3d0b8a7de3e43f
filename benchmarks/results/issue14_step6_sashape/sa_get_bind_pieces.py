"""Pieces of a routed get_bind for the ORM get's statement (callgrind; no statement I/O)."""
import sys, functools
sys.path.insert(0, sys.argv[1] + "/benchmarks")
if len(sys.argv) > 4 and sys.argv[4] == "--child":
    import profile_paths as pp
    from sqlalchemy import select
    from sqlalchemy.orm import sessionmaker
    import router, router.sqlalchemy as rsa
    P, R = sys.argv[2], sys.argv[3]
    Item = pp.Item
    cfg = router.RouterConfig(primary=router.NodeConfig(dsn=P, name="primary"),
        replicas=[router.NodeConfig(dsn=R, name="replica1")],
        pool=router.PoolConfig(min_size=1, max_size=2, connect_timeout=60), monitor_timeout=30.0, monitor_interval=60.0)
    f = rsa.sessionmaker(cfg)
    with f() as s: s.get(Item, 1)
    mapper = Item.__mapper__
    from sqlalchemy.orm import loading
    base = select(Item)
    def make(i):
        q = base._clone()
        q._where_criteria = (mapper._get_clause[0],)
        return q
    routing = f.class_._router_routing
    N = 2000
    def v_make(i): make(i)
    def v_key(i): make(i)._generate_cache_key()
    def v_keyhash(i): hash(make(i)._generate_cache_key().key)
    def v_classify(i): routing.classify(make(i))
    def v_session(i):
        with f() as s: pass
    def v_getbind(i):
        with f() as s: s.get_bind(mapper, clause=make(i))
    def v_getbind2(i):
        with f() as s:
            s.get_bind(mapper, clause=make(i))
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    pf = sessionmaker(create_engine(make_url(R).set(drivername="postgresql+psycopg")))
    def v_psession(i):
        with pf() as s: pass
    def v_pgetbind(i):
        with pf() as s:
            c = make(i); s.get_bind(mapper, clause=c); c._generate_cache_key()
    def v_getbindk(i):
        with f() as s:
            c = make(i); s.get_bind(mapper, clause=c); c._generate_cache_key()
    sc = routing.root_scope
    def v_scope(i): sc.session(None, None)
    core = routing.engine
    def v_decide(i):
        x = sc.session(None, None); d = core.read_decision(x); core.read_served(x, d); routing.record(d)
    import logging
    d0 = core.read_decision(sc.session(None, None))
    c0 = routing.classify(make(0))
    def patch(name):
        if "nocls" in name: routing.classify = lambda c: c0
        if "nodec" in name:
            core.read_decision = lambda scope: d0
            core.read_served = lambda scope, d: None
        if "norec" in name: routing.record = lambda d: None
        if "nolog" in name: logging.Logger.isEnabledFor = lambda self, lvl: False
    def v_gb(i):
        with f() as s:
            c = make(i); s.get_bind(mapper, clause=c); c._generate_cache_key()
    for name in sys.argv[5].split(","):
        fn = locals()["v_" + name.split("@")[0].split("-")[0]]
        patch(name)
        for i in range(200): fn(i)
        functools.reduce(lambda acc, i: (fn(i), acc)[1], range(N), 0)
    f.close()
    sys.exit(0)
from _report import callgrind_dumps
variants = sys.argv[4]
tot = callgrind_dumps(__file__, [sys.argv[1], sys.argv[2], sys.argv[3], "--child", variants])
for v, t in zip(variants.split(","), tot): print(f"{v:20s} {t/2000:10,.0f}")
