#!/usr/bin/env bash
# Rehearse the production deploy of deploy/README.md on this machine, on loopback only:
# Debian's nginx (TLS, self-signed) -> gunicorn (3 workers x 16 threads) -> the app, the RQ worker,
# Redis and PostgreSQL (the local servers; REHEARSE_DB=sqlite for SQLite). Then an
# HTTPS smoke journey (deploy/smoke.py) and the desk's live alerts through nginx (open
# event streams, a new order reaching all of them), then everything is torn down.
#
#   bash deploy/rehearse.sh                  # PostgreSQL at 127.0.0.1:5432
#   REHEARSE_DB=sqlite bash deploy/rehearse.sh
#
# It follows the README's steps with the same files: the env file is
# deploy/shopdesk.env.example, gunicorn and the worker start with the ExecStart
# lines of deploy/shopdesk-{web,worker}.service, nginx runs deploy/nginx.conf.sample.
# Only names, ports and paths change (/srv/shopdesk -> a copy of this tree in a
# temp dir; the repo's .venv stands in for the VPS's). Nothing outside the temp
# dir is written: nginx runs in the foreground with its own prefix, pid and
# config on free high ports; the system nginx, port 80 and 443 are not touched.
#
# Environment: REHEARSE_DB=postgres|sqlite, REHEARSE_PG (admin URL, default
# postgresql://postgres@127.0.0.1:5432/postgres), REHEARSE_REDIS (default
# redis://127.0.0.1:6379), REHEARSE_SOURCE (the tree to deploy, default this
# repository's working tree), REHEARSE_KEEP=1 keeps the temp dir for reading logs.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
DB_KIND="${REHEARSE_DB:-postgres}"
PG_ADMIN="${REHEARSE_PG:-postgresql://postgres@127.0.0.1:5432/postgres}"
REDIS_BASE="${REHEARSE_REDIS:-redis://127.0.0.1:6379}"
VENV="$REPO/.venv"
PY="$VENV/bin/python"
STARTED=$SECONDS

say() { printf '[rehearse %3ss] %s\n' "$((SECONDS - STARTED))" "$*"; }
fail() { printf '[rehearse] FAILED: %s\n' "$*" >&2; exit 1; }

case "$DB_KIND" in postgres|sqlite) ;; *) fail "REHEARSE_DB must be postgres or sqlite, not '$DB_KIND'";; esac
[ -x "$PY" ] || fail "no virtualenv at $VENV: run 'make setup' first"
[ -f "$REPO/static/vendor/htmx.min.js" ] || fail "static/vendor/htmx.min.js missing: run 'make setup' first"
[ -f "$REPO/static/vendor/htmx-ext-sse.js" ] || fail "static/vendor/htmx-ext-sse.js missing: run 'make setup' first"

# ------------------------------------------------------------------ packages (README step 1)
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] || ! command -v openssl >/dev/null 2>&1; then
    make -C "$REPO" --no-print-directory deploy-deps
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || fail "nginx is not installed and could not be installed (needs root and apt-get)"

# ------------------------------------------------------------------ teardown, whatever happens
TMP="$(mktemp -d /tmp/shopdesk-rehearse.XXXXXX)"
chmod 755 "$TMP"  # nginx's workers (nobody) read static files and buffer uploads in here
PIDS=()
PG_DB=""
REDIS_URL_USED=""

teardown() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do  # each service leads its own process group: its children go too
        kill -TERM -- "-$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null
    done
    if [ -n "$PG_DB" ]; then
        psql "$PG_ADMIN" -q -X -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)" >/dev/null 2>&1 \
            || echo "[rehearse] could not drop database $PG_DB" >&2
    fi
    if [ -n "$REDIS_URL_USED" ]; then
        "$PY" -c 'import redis,sys; redis.Redis.from_url(sys.argv[1]).flushdb()' "$REDIS_URL_USED" 2>/dev/null
    fi
    if [ "$rc" != 0 ]; then
        for log in "$TMP"/logs/*.log; do
            [ -f "$log" ] || continue
            echo "----- last lines of $(basename "$log") -----" >&2
            tail -n 25 "$log" >&2
        done
    fi
    if [ "${REHEARSE_KEEP:-0}" = 1 ]; then echo "[rehearse] kept $TMP"; else rm -rf "$TMP"; fi
    if [ "$rc" = 0 ]; then say "REHEARSAL PASSED ($DB_KIND) in $((SECONDS - STARTED)) s"; fi
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# Start "$@" in the background as the leader of its own process group, output to logs/$1.log.
start() {
    local name="$1"; shift
    setsid "$@" >"$TMP/logs/$name.log" 2>&1 < /dev/null &
    PIDS+=("$!")
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Wait up to $1 seconds for command "${@:2}" to succeed.
wait_for() {
    local limit="$1"; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || fail "a service exited early (pid $pid)"; done
        sleep 0.3
    done
}

mkdir -p "$TMP/logs" "$TMP/nginx" "$TMP/acme"
APP_PORT="$(free_port)"; HTTPS_PORT="$(free_port)"; HTTP_PORT="$(free_port)"

# ------------------------------------------------------------------ the code (README step 2)
# The VPS gets a clone in /srv/shopdesk; here a copy of this working tree.
APP="$TMP/srv/shopdesk"
mkdir -p "$APP"
SOURCE="${REHEARSE_SOURCE:-$REPO}"
[ -f "$SOURCE/static/vendor/htmx.min.js" ] || fail "$SOURCE/static/vendor/htmx.min.js missing: run 'make setup' first"
tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./node_modules --exclude=./instance \
    -cf - . | tar -C "$APP" -xf -
chmod -R a+rX "$APP/static"
say "app copied to $APP"

# ------------------------------------------------------------------ database and Redis (README step 3)
if [ "$DB_KIND" = postgres ]; then
    command -v psql >/dev/null || fail "psql not found"
    psql "$PG_ADMIN" -q -X -c "SELECT 1" >/dev/null 2>&1 || fail "no PostgreSQL at $PG_ADMIN"
    PG_DB="shopdesk_rehearse_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
    psql "$PG_ADMIN" -q -X -c "CREATE DATABASE \"$PG_DB\"" >/dev/null
    DATABASE_URL="$(echo "${PG_ADMIN%/*}/$PG_DB" | sed 's|^postgresql://|postgresql+psycopg://|')"
else
    DATABASE_URL="sqlite:///$APP/instance/shopdesk.db"
fi
# A Redis database of the local server that nobody uses now (teardown empties it again).
REDIS_URL_USED="$("$PY" - "$REDIS_BASE" <<'EOF'
import random, sys, redis
base = sys.argv[1].rstrip("/")
for db in random.sample(range(2, 16), 14):
    if redis.Redis.from_url(f"{base}/{db}", socket_timeout=3).dbsize() == 0:
        print(f"{base}/{db}")
        break
else:
    sys.exit("no empty Redis database on " + base)
EOF
)" || { REDIS_URL_USED=""; fail "Redis at $REDIS_BASE is not usable"; }

# ------------------------------------------------------------------ the env file (README step 4)
SECRET="$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
ENV_FILE="$TMP/shopdesk.env"
sed -e "s|^SECRET_KEY=.*|SECRET_KEY=$SECRET|" \
    -e "s|^# *DATABASE_URL=.*|DATABASE_URL=$DATABASE_URL|" \
    -e "s|^REDIS_URL=.*|REDIS_URL=$REDIS_URL_USED|" \
    "$REPO/deploy/shopdesk.env.example" >"$ENV_FILE"
for var in SHOPDESK_ENV=production SHOPDESK_PROXY_COUNT=1 "DATABASE_URL=$DATABASE_URL" \
           "REDIS_URL=$REDIS_URL_USED" "SECRET_KEY=$SECRET"; do
    grep -qxF "$var" "$ENV_FILE" || fail "the env file lacks $var (deploy/shopdesk.env.example changed?)"
done
set -a; . "$ENV_FILE"; set +a

# ------------------------------------------------------------------ migrations and owner (README step 5)
FLASK=("$VENV/bin/flask" --app app)
cd "$APP"
timeout 120 "${FLASK[@]}" db upgrade >"$TMP/logs/migrate.log" 2>&1 || fail "migrations failed"
OWNER_EMAIL="owner@rehearsal.test"
OWNER_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')"
timeout 60 "${FLASK[@]}" create-user --email "$OWNER_EMAIL" --password "$OWNER_PASSWORD" \
    --role owner --name "Rehearsal Owner" >>"$TMP/logs/migrate.log" 2>&1 || fail "create-user failed"
# The catalogue has no screen yet: one product to buy, made through the models.
timeout 60 "$PY" - <<'EOF' >>"$TMP/logs/migrate.log" 2>&1 || fail "could not create the product"
from app import create_app
from domain.db import db
from domain.models import Product, Variant
from domain.payment_details import save_payment_details
from domain.store import all_payment_methods, ensure_store_defaults, set_payment_method_enabled
app = create_app()
with app.app_context():
    # FPS takes payment only once its details are filled in (domain/payment_details.py).
    ensure_store_defaults()
    fps = next(m for m in all_payment_methods() if m.code == "fps")
    save_payment_details(fps.id, fps_id="1234567", payee_name="Rehearsal Cookies Ltd")
    set_payment_method_enabled(fps.id, True)
    product = Product(name="Rehearsal cookies", description="")
    db.session.add(product)
    db.session.flush()
    db.session.add(Variant(product_id=product.id, name="Original", sku="REH-1",
                           barcode="4890000000017", price_cents=12800, stock=20))
    db.session.commit()
EOF
say "database ($DB_KIND) migrated, owner and product created"

# ------------------------------------------------------------------ gunicorn and the worker (README step 6)
# The ExecStart lines of the systemd units, with the rehearsal's paths and port.
unit_exec() {
    sed -n 's/^ExecStart=//p' "$REPO/deploy/$1" \
        | sed -e "s|/srv/shopdesk/.venv|$VENV|g" -e "s|/srv/shopdesk|$APP|g" \
              -e "s|127.0.0.1:8000|127.0.0.1:$APP_PORT|g"
}
WEB_CMD="$(unit_exec shopdesk-web.service)"
WORKER_CMD="$(unit_exec shopdesk-worker.service)"
case "$WEB_CMD" in *"--workers 3 --worker-class gthread --threads "*"127.0.0.1:$APP_PORT"*"--limit-request-line 8190"*) ;;
    *) fail "unexpected ExecStart in shopdesk-web.service: $WEB_CMD";; esac
eval "start web $WEB_CMD"
eval "start worker $WORKER_CMD"

# ------------------------------------------------------------------ nginx (README step 7)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$TMP/privkey.pem" -out "$TMP/fullchain.pem" >/dev/null 2>&1 || fail "openssl failed"
SITE="$TMP/shopdesk-site.conf"
replace() {  # replace exactly-present text in the site file, or fail loudly
    grep -qF -- "$1" "$SITE" || fail "nginx.conf.sample no longer contains: $1"
    local from to
    from="$(printf '%s' "$1" | sed 's/[][\/.*^$|]/\\&/g')"
    to="$(printf '%s' "$2" | sed 's/[\/&|]/\\&/g')"
    sed -i "s|$from|$to|g" "$SITE"
}
cp "$REPO/deploy/nginx.conf.sample" "$SITE"
replace "server 127.0.0.1:8000;" "server 127.0.0.1:$APP_PORT;"
replace "listen 443 ssl http2;" "listen 127.0.0.1:$HTTPS_PORT ssl http2;"
replace "listen 80;" "listen 127.0.0.1:$HTTP_PORT;"
replace "server_name shop.example.com;" "server_name 127.0.0.1;"
replace "/etc/letsencrypt/live/shop.example.com/fullchain.pem" "$TMP/fullchain.pem"
replace "/etc/letsencrypt/live/shop.example.com/privkey.pem" "$TMP/privkey.pem"
replace "alias /srv/shopdesk/static/;" "alias $APP/static/;"
replace "root /var/www/letsencrypt;" "root $TMP/acme;"
cat >"$TMP/nginx.conf" <<EOF
# The rehearsal's own nginx: its prefix, pid, logs and temp files in $TMP.
daemon off;
worker_processes 2;
pid $TMP/nginx.pid;
error_log $TMP/logs/nginx-error.log warn;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    include $SITE;
}
EOF
NGINX_ARGS=(-p "$TMP/nginx" -c "$TMP/nginx.conf" -e "$TMP/logs/nginx-error.log")
"$NGINX" "${NGINX_ARGS[@]}" -t >"$TMP/logs/nginx-test.log" 2>&1 || { cat "$TMP/logs/nginx-test.log" >&2; fail "nginx -t refused the config"; }
"$NGINX" "${NGINX_ARGS[@]}" -T >"$TMP/nginx-effective.conf" 2>/dev/null
start nginx "$NGINX" "${NGINX_ARGS[@]}"

# ------------------------------------------------------------------ wait until all answer
port_open() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"; }
wait_for 60 port_open "$APP_PORT" || fail "gunicorn did not listen on 127.0.0.1:$APP_PORT within 60 s"
wait_for 20 port_open "$HTTPS_PORT" || fail "nginx did not listen on 127.0.0.1:$HTTPS_PORT within 20 s"
say "gunicorn on :$APP_PORT, nginx on https :$HTTPS_PORT and http :$HTTP_PORT"

# ------------------------------------------------------------------ the smoke journey and the checks
timeout 150 "$PY" "$REPO/deploy/smoke.py" \
    --base "https://127.0.0.1:$HTTPS_PORT" --http "http://127.0.0.1:$HTTP_PORT" \
    --cacert "$TMP/fullchain.pem" --email "$OWNER_EMAIL" --password "$OWNER_PASSWORD" \
    --web-log "$TMP/logs/web.log" --worker-log "$TMP/logs/worker.log" \
    --nginx-config "$TMP/nginx-effective.conf" --work-dir "$TMP" \
    || fail "the smoke journey failed (see above)"

# ------------------------------------------------------------------ live alerts through nginx
# More open event streams than gunicorn has workers: with threads the site still answers,
# every stream starts at once (nginx does not buffer it), and an order placed in the shop
# reaches every stream within 5 s through Redis pub/sub, whichever worker holds it.
timeout 60 "$PY" - "$REPO/deploy" "https://127.0.0.1:$HTTPS_PORT" "$TMP/fullchain.pem" \
    "$OWNER_EMAIL" "$OWNER_PASSWORD" <<'EOF' || fail "the live alerts check failed (see above)"
import http.client, re, sys, threading, time
sys.path.insert(0, sys.argv[1])
from smoke import Browser, csrf_token, redirect_path

base, cacert, email, password = sys.argv[2:6]
STREAMS = 5

def fail(message):
    print(f"LIVE ALERTS: {message}", file=sys.stderr, flush=True)
    sys.exit(1)

owner = Browser(base, cacert, source="127.0.0.9")
login = owner.get("/login")
owner.post_form("/login", [("csrf_token", csrf_token(login.text)), ("email", email), ("password", password)])
desk = owner.get("/orders")
after = re.search(r'name="after" value="(\d+)"', desk.text)
sig = re.search(r'name="sig" value="([\d.]+)"', desk.text)
if desk.status != 200 or not (after and sig):
    fail(f"the desk page has no live alerts state ({desk.status})")
cookie = "; ".join(f"{k}={v}" for k, v in owner.cookies.items())

streams = []
for _ in range(STREAMS):
    conn = http.client.HTTPSConnection(owner.host, owner.port, context=owner.context, timeout=10,
                                       source_address=("127.0.0.9", 0))
    conn.request("GET", f"/events?after={after.group(1)}&sig={sig.group(1)}",
                 headers={"Cookie": cookie, "Accept": "text/event-stream"})
    response = conn.getresponse()
    if response.status != 200 or not response.getheader("Content-Type", "").startswith("text/event-stream"):
        fail(f"/events answered {response.status} {response.getheader('Content-Type')}")
    started = time.monotonic()
    first = response.readline()
    if b"retry:" not in first or time.monotonic() - started > 3:
        fail(f"the stream's first line took {time.monotonic() - started:.1f} s: {first!r} (buffered?)")
    streams.append((conn, response))
started = time.monotonic()
health = owner.get("/healthz")
if health.status != 200 or time.monotonic() - started > 3:
    fail(f"with {STREAMS} streams open /healthz took {time.monotonic() - started:.1f} s ({health.status})")

received = []
def listen(response):
    data = b""
    while b"event: alert" not in data:
        line = response.readline()
        if not line:
            return
        data += line
    while not data.endswith(b"\n\n"):
        data += response.readline()
    received.append((time.monotonic(), data.decode()))
readers = [threading.Thread(target=listen, args=(r,), daemon=True) for _, r in streams]
for reader in readers:
    reader.start()

customer = Browser(base, cacert, source="127.0.0.10")
shop = customer.get("/shop/")
variant = re.search(r'name="variant_id" value="(\d+)"', shop.text).group(1)
customer.post_form("/shop/cart/add", [("csrf_token", csrf_token(shop.text)), ("variant_id", variant),
                                       ("quantity", "1")])
cart = customer.get("/shop/cart")
payment = re.search(r'name="payment_method" value="(\d+)"', cart.text).group(1)
shipping = re.search(r'name="shipping_method" value="(\d+)"', cart.text).group(1)
placed_at = time.monotonic()
placed = customer.post_form("/shop/checkout", [
    ("csrf_token", csrf_token(cart.text)), ("name", "Live <b>Alert</b>"), ("phone", "9123 4567"),
    ("email", "live@example.hk"), ("address", "Mong Kok"), ("payment_method", payment),
    ("shipping_method", shipping)])
if not redirect_path(placed).startswith("/shop/o/"):
    fail(f"checkout answered {placed.status}")
for reader in readers:
    reader.join(max(0.1, placed_at + 5 - time.monotonic()))
late = [round(at - placed_at, 1) for at, _ in received if at - placed_at > 5]
if len(received) != STREAMS or late:
    fail(f"{len(received)} of {STREAMS} streams got the new order within 5 s (late: {late})")
if not all('data-testid="toast-' in text and "Live &lt;b&gt;Alert&lt;/b&gt;" in text for _, text in received):
    fail("an alert without the toast, or with the customer's name unescaped")
for conn, _ in streams:
    conn.close()
print(f"  - live alerts: {STREAMS} streams through nginx, /healthz answered meanwhile, the new order "
      f"reached all in {max(at for at, _ in received) - placed_at:.2f} s", flush=True)
EOF
say "live alerts through nginx: ok"
