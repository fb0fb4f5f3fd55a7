"""What a delivery writes to SQLite, by b-tree, for layouts of the deliveries tables.

Emulates the delivery writer's batches (each commit: `b` new deliveries with their
payloads and provider delivery ids, and the acks of the batch before, which carry their
sends) on a database that already holds 50,000 acked deliveries, with checkpoints disabled
so that the WAL keeps every frame; then reads the WAL's frame headers to count the pages
each commit appended, what a checkpoint every `ckpt_every` commits would copy (the
distinct pages since the last one), and which table or index each page belongs to
(`dbstat`). Python's own sqlite3, so it needs nothing installed.

    python3 loadtest/wal-model/wal_model.py

BENCHMARKS.md ("Where the bytes went") quotes what it printed; the load test measures
the real hub (`write_bytes` of /proc/PID/io).
"""
import sqlite3, os, random, struct, collections, json, hashlib
def run(schema, variant, b=16, n=20000, warm=50000, agents=4, body=1024, ckpt_every=None, page=4096, sent_sep=False):
    path = f"/tmp/wal-model-{os.getpid()}.db"
    for s in ["", "-wal", "-shm"]:
        try: os.remove(path+s)
        except FileNotFoundError: pass
    c = sqlite3.connect(path, isolation_level=None)
    c.execute(f"PRAGMA page_size={page}")
    c.execute("PRAGMA journal_mode=WAL"); c.execute("PRAGMA synchronous=FULL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.executescript(schema["ddl"])
    hooks = [f"whk_{random.getrandbits(100):026x}"[:30] for _ in range(agents)]
    ags = [f"agt_{random.getrandbits(100):026x}"[:30] for _ in range(agents)]
    headers = json.dumps({"content-type":"application/json","webhook-id":"msg_1_2_3","webhook-timestamp":"1700000000","webhook-signature":"v1,"+"A"*44,"user-agent":"loadtest","content-length":"1100"})
    seq = [0]; qseq=[0]
    ulid_t=[1_700_000_000_000]
    def new_id():
        ulid_t[0]+=1
        return "dlv_%012x%014x" % (ulid_t[0], random.getrandbits(56))
    def insert_rows(k):
        rows=[]
        for i in range(k):
            seq[0]+=1; qseq[0]+=1
            a = seq[0] % agents
            poster = random.randrange(256)
            rows.append(dict(seq=seq[0], id=new_id(), wh=hooks[a], ag=ags[a], q=qseq[0], pid=f"msg_{poster}_{seq[0]}", at=ulid_t[0], body=os.urandom(body//2).hex().encode()[:body]))
        schema["insert"](c, rows, headers)
        return rows
    # warm up: history already acked
    c.execute("BEGIN")
    for i in range(warm//500):
        rows = insert_rows(500)
        schema["ack"](c, rows, with_sent=True)
    c.execute("COMMIT")
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    frames_at_commit=[]
    def walframes():
        return (os.path.getsize(path+"-wal")-32)//(page+24) if os.path.exists(path+"-wal") else 0
    prev=[]; prev2=[]
    commits=0
    for k in range(n//b):
        c.execute("BEGIN IMMEDIATE")
        rows = insert_rows(b)
        if sent_sep:
            if prev: schema["sent"](c, prev)
            if prev2: schema["ack"](c, prev2, with_sent=False)
        else:
            if prev: schema["ack"](c, prev, with_sent=True)
        c.execute("COMMIT"); commits+=1
        frames_at_commit.append(walframes())
        prev2, prev = prev, rows
    total_frames = walframes()
    # checkpoint cost: distinct pages per interval of ckpt_every commits
    with open(path+"-wal","rb") as f: data=f.read()
    pages=[]
    off=32
    while off+24<=len(data):
        pg=struct.unpack(">I", data[off:off+4])[0]; pages.append(pg); off+=24+page
    copied=0; start=0
    ck = ckpt_every or len(frames_at_commit)
    bounds = frames_at_commit[ck-1::ck]
    if not bounds or bounds[-1]!=total_frames: bounds.append(total_frames)
    for end in bounds:
        copied+=len(set(pages[start:end])); start=end
    # which btree
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    owner={}
    try:
        for name,pgno in c.execute("SELECT name, pageno FROM dbstat"): owner[pgno]=name
    except Exception as e: print("no dbstat", e)
    by=collections.Counter(owner.get(p,"?") for p in pages)
    nd = (n//b)*b
    wal_b = total_frames*(page+24)/nd; ck_b = copied*page/nd
    print(f"{variant:28s} b={b:4d} WAL {wal_b/1024:6.2f} KiB/dlv  ckpt {ck_b/1024:6.2f} KiB/dlv  total {(wal_b+ck_b)/1024:6.2f}  frames/commit {total_frames/commits:5.1f}")
    print("   pages of WAL per delivery, by b-tree:", {k: round(v/nd,2) for k,v in by.most_common()})
    c.close()
    for s in ["", "-wal", "-shm"]:
        try: os.remove(path+s)
        except FileNotFoundError: pass

CUR_DDL = """
CREATE TABLE deliveries (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, webhook_id TEXT NOT NULL, agent_id TEXT NOT NULL,
 status TEXT NOT NULL, queue_seq INTEGER, event TEXT, provider_delivery_id TEXT, verified INTEGER NOT NULL, reason TEXT,
 received_at INTEGER NOT NULL, sent_at INTEGER, acked_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0, size_bytes INTEGER NOT NULL, body_sha256 TEXT);
CREATE INDEX deliveries_pending ON deliveries(agent_id, queue_seq) WHERE status IN ('queued', 'sent');
CREATE INDEX deliveries_by_webhook ON deliveries(webhook_id, seq);
CREATE INDEX deliveries_dedupe ON deliveries(webhook_id, provider_delivery_id) WHERE provider_delivery_id IS NOT NULL;
CREATE INDEX deliveries_by_received ON deliveries(received_at);
CREATE TABLE delivery_payloads (seq INTEGER PRIMARY KEY, headers TEXT NOT NULL, body BLOB NOT NULL);
"""
def cur_insert(c, rows, headers):
    c.executemany("INSERT INTO deliveries (seq,id,webhook_id,agent_id,status,queue_seq,event,provider_delivery_id,verified,received_at,size_bytes) VALUES (?,?,?,?,'queued',?,NULL,?,1,?,?)",
        [(r["seq"],r["id"],r["wh"],r["ag"],r["q"],r["pid"],r["at"],len(r["body"])) for r in rows])
    c.executemany("INSERT INTO delivery_payloads VALUES (?,?,?)", [(r["seq"],headers,r["body"]) for r in rows])
def cur_sent(c, rows):
    c.executemany("UPDATE deliveries SET status='sent', sent_at=?, attempts=attempts+1 WHERE id=?", [(r["at"]+1, r["id"]) for r in rows])
def cur_ack(c, rows, with_sent):
    c.executemany("UPDATE deliveries SET status='acked', acked_at=?, sent_at=COALESCE(sent_at,?), attempts=attempts+? WHERE id=? AND agent_id=?", [(r["at"]+2, r["at"]+1, 1 if with_sent else 0, r["id"], r["ag"]) for r in rows])
CUR = dict(ddl=CUR_DDL, insert=cur_insert, sent=cur_sent, ack=cur_ack)


NODEDUP_DDL = CUR_DDL.replace("CREATE INDEX deliveries_dedupe ON deliveries(webhook_id, provider_delivery_id) WHERE provider_delivery_id IS NOT NULL;", "")
NODEDUP = dict(CUR, ddl=NODEDUP_DDL)
# The provider delivery ids in a table keyed by (day, hash), one random insert each.
H_DDL = NODEDUP_DDL + "CREATE TABLE dd(day INTEGER, h INTEGER, seq INTEGER, PRIMARY KEY(day,h)) WITHOUT ROWID;"
def h_insert(c, rows, headers):
    cur_insert(c, rows, headers)
    c.executemany("INSERT OR IGNORE INTO dd VALUES (0,?,?)", [(int.from_bytes(hashlib.sha256((r["wh"]+r["pid"]).encode()).digest()[:8],'big',signed=True), r["seq"]) for r in rows])
HASHED = dict(CUR, ddl=H_DDL, insert=h_insert)
# Acks as a per-agent cursor: rows never updated, the payload back in the row, and the
# pending index over every row (nothing leaves it).
CURSOR_DDL = NODEDUP_DDL.replace("size_bytes INTEGER NOT NULL, body_sha256 TEXT);", "size_bytes INTEGER NOT NULL, body_sha256 TEXT, headers TEXT, body BLOB);").replace("CREATE INDEX deliveries_pending ON deliveries(agent_id, queue_seq) WHERE status IN ('queued', 'sent');", "CREATE INDEX deliveries_pending ON deliveries(agent_id, queue_seq);") + "CREATE TABLE ack_cursor(agent_id TEXT PRIMARY KEY, upto INTEGER, at INTEGER) WITHOUT ROWID;"
def inline_insert(c, rows, headers):
    c.executemany("INSERT INTO deliveries (seq,id,webhook_id,agent_id,status,queue_seq,event,provider_delivery_id,verified,received_at,size_bytes,headers,body) VALUES (?,?,?,?,'queued',?,NULL,?,1,?,?,?,?)",
        [(r["seq"],r["id"],r["wh"],r["ag"],r["q"],r["pid"],r["at"],len(r["body"]),headers,r["body"]) for r in rows])
def cursor_ack(c, rows, with_sent):
    by = {}
    for r in rows: by[r["ag"]] = max(by.get(r["ag"], 0), r["q"])
    c.executemany("INSERT INTO ack_cursor VALUES (?,?,?) ON CONFLICT(agent_id) DO UPDATE SET upto=excluded.upto, at=excluded.at", [(a, q, 0) for a, q in by.items()])
CURSOR = dict(ddl=CURSOR_DDL, insert=inline_insert, ack=cursor_ack)

if __name__ == "__main__":
    layouts = [("dedupe index (before)", CUR), ("dedupe in a hashed table", HASHED),
               ("no dedupe writes", NODEDUP), ("acks as a cursor", CURSOR)]
    for b, ck in [(1, 100), (16, 31), (64, 8)]:
        for page in [4096, 1024]:
            print(f"--- {b} deliveries per commit, checkpoint every {ck} commits, {page}-byte pages")
            for name, layout in layouts:
                run(layout, name, b=b, n=max(4000, b * 400), ckpt_every=ck, page=page)
