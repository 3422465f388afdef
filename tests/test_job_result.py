"""A bulk job's progress page says what it did and which orders it left alone."""

from __future__ import annotations

from domain.db import db
from domain.models import Job, utcnow


def add_job(owner, **values):
    job = Job(id=values.pop("id", "job-1"), kind=values.pop("kind", "tracking_import"),
              status="done", total=3, user_id=owner.id, created_at=utcnow(),
              finished_at=utcnow(), **values)
    db.session.add(job)
    db.session.commit()
    return job


def test_a_bulk_result_lists_counts_and_skipped_orders(owner_client, owner):
    add_job(owner, result={"done": 2, "shipped": 1, "coded": 1, "unchanged": 4,
                           "skipped": [{"number": "SD10009", "reason": "<b>completed</b>"}]})
    body = owner_client.get("/jobs/job-1").get_data(as_text=True)
    assert "Importing tracking codes" in body and "Done: 2 orders." in body
    assert "1 order shipped" in body and "1 order given its tracking code" in body
    assert "4 orders already up to date" in body
    assert "1 order skipped" in body and "SD10009" in body
    assert "&lt;b&gt;completed&lt;/b&gt;" in body and "<b>completed</b>" not in body
    fragment = owner_client.get("/jobs/job-1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.get_data(as_text=True)
    assert "SD10009" in fragment.get_data(as_text=True)


def test_a_job_without_a_result_reads_as_before(owner_client, owner):
    add_job(owner, id="job-2", kind="export_orders", result_path="/nope.xlsx",
            result_name="orders.xlsx")
    body = owner_client.get("/jobs/job-2").get_data(as_text=True)
    assert "Ready: 3 orders." in body and "Download orders.xlsx" in body
    assert "skipped" not in body


def test_another_staff_members_job_is_not_found(staff_client, owner):
    add_job(owner, id="job-3", result={"done": 0, "skipped": []})
    assert staff_client.get("/jobs/job-3").status_code == 404
