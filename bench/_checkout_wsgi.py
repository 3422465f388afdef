"""The app as bench/checkout.py's gunicorn serves it: ``app:create_app()`` with its
instance files (uploads, generated files, mail, the embedded Redis) in the bench's
temporary directory instead of the checkout's instance/."""

import os
from pathlib import Path

from app import create_app

_instance = Path(os.environ["SHOPDESK_INSTANCE"])
app = create_app({"UPLOAD_FOLDER": str(_instance / "uploads"),
                  "GENERATED_FOLDER": str(_instance / "generated"),
                  "MAIL_FOLDER": str(_instance / "mail"),
                  "REDIS_EMBEDDED_DB": str(_instance / "redis.db")})
