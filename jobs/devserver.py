"""``python -m jobs.devserver``: the web app, an RQ worker with its scheduler, and the
deadline sweep, as one command that one Ctrl-C stops entirely (``make run``).

The web app runs in this process (Flask's development server on 127.0.0.1:5000,
threaded, no reloader). The worker runs as a child process (``flask worker``:
RQ worker + scheduler + sweep thread). This process starts the embedded Redis
first so the worker attaches to the same server. Ctrl-C reaches both (same
process group); on any exit path the child is stopped and waited for, and if
this process is killed outright the worker notices and stops itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

HOST = os.environ.get("SHOPDESK_HOST", "127.0.0.1")
PORT = int(os.environ.get("SHOPDESK_PORT", "5000"))


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)  # RQ: warm shutdown, finishes the current job
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _watch(child: subprocess.Popen) -> None:
    code = child.wait()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        print(f"\n!! The job worker stopped (exit code {code}). Background jobs will not run; "
              "press Ctrl-C and start again.", file=sys.stderr, flush=True)


def main() -> int:
    # The links in emails and the sandbox WhatsApp API (the worker sends to it, its status
    # webhooks come back here) are reached at PUBLIC_URL: unless set, where this server
    # listens, so SHOPDESK_PORT=8000 alone still works. Set before the worker inherits it.
    here = "127.0.0.1" if HOST in ("", "0.0.0.0", "::") else HOST
    here = f"[{here}]" if ":" in here else here
    os.environ.setdefault("SHOPDESK_PUBLIC_URL", f"http://{here}:{PORT}")
    from app import create_app
    from jobs.queue import _embedded, get_redis, stop_embedded
    from jobs.worker import PARENT_ENV

    app = create_app()
    with app.app_context():
        redis_conn = get_redis()  # start (or attach to) the embedded server before the worker
        redis_conn.ping()
        where = app.config.get("REDIS_URL") or f"embedded, {app.config['REDIS_EMBEDDED_DB']}"

    # The worker stops by itself if this process dies without stopping it (kill -9):
    # no orphan worker keeps running jobs against a dev server that is gone.
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"],
                              env={**os.environ, PARENT_ENV: str(os.getpid())})
    threading.Thread(target=_watch, args=(worker,), daemon=True).start()

    # Ctrl-C and SIGTERM (systemd, docker, kill) both stop everything; SIGINT is
    # set explicitly because a parent shell may have started us with it ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"\n  Shopdesk is running at http://{HOST}:{PORT}/   (store front: "
          f"http://{HOST}:{PORT}/shop/)\n  Jobs: RQ worker pid {worker.pid}, Redis {where}\n"
          "  Press Ctrl-C to stop everything.\n", flush=True)
    try:
        app.run(host=HOST, port=PORT, threaded=True, use_reloader=False, debug=False)
    except KeyboardInterrupt:
        pass
    finally:
        print("\nStopping the worker…", flush=True)
        _stop(worker)
        if not app.config.get("REDIS_URL"):
            server = _embedded.get(app.config["REDIS_EMBEDDED_DB"])
            if server is not None and server.redis_dir:  # we started it: stop it
                stop_embedded(app.config["REDIS_EMBEDDED_DB"])
    print("Shopdesk stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
