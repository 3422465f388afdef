"""bench/checkout.py's customers: the store journey over HTTP, one cookie jar each.

A journey is: the store page, add one item (POST with the page's CSRF token), the
cart page, checkout with a manual method (POST: the form's fields and choices
read from the cart page), then the order page the checkout redirects to. Only
127.0.0.1 is ever asked; every client stops at the deadline or when the shared
request budget is spent.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter, defaultdict
from urllib.parse import urlsplit

import httpx

STEPS = ("store", "add", "cart", "checkout", "order")
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ADD_RE = re.compile(r'<input type="hidden" name="variant_id" value="(\d+)">\s*<label class="sr-only" '
                    r'for="q\d+"')
MANUAL_RE = re.compile(r'name="payment_method" value="(\d+)" data-kind="manual"')
SHIPPING_RE = re.compile(r'name="shipping_method" value="(\d+)"')
CHECKOUT_FORM_RE = re.compile(r'<form id="checkout-form".*?</form>', re.S)
FIELD_RE = re.compile(r'<(?:input|textarea)[^>]*\bname="(name|phone|email|address|note)"')
LOCKED = "database is locked"
NAMES = ["陳大文", "李小美", "Kelvin Wong", "黃志明", "Mandy Chan", "張家豪"]


class Budget:
    """A deadline and a request count shared by every client."""

    def __init__(self, seconds: float, max_requests: int):
        self.deadline = time.monotonic() + seconds
        self.left = max_requests
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0 or time.monotonic() >= self.deadline:
                return False
            self.left -= 1
            return True


class Stats:
    def __init__(self):
        self.times: dict[str, list[float]] = defaultdict(list)
        self.status = Counter()
        self.orders = self.refused = self.locked = self.errors = 0
        self._lock = threading.Lock()

    def add(self, step: str, ms: float, status: int, body: str) -> None:
        with self._lock:
            self.times[step].append(ms)
            self.status[status] += 1
            if LOCKED in body:
                self.locked += 1

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)


class OutOfBudget(Exception):
    pass


class Customer:
    def __init__(self, base: str, budget: Budget, stats: Stats, low_ids: list[int], seed: int):
        assert urlsplit(base).hostname == "127.0.0.1", "the bench talks to loopback only"
        self.base, self.budget, self.stats, self.low_ids = base, budget, stats, set(low_ids)
        self.rng = random.Random(seed)
        self.http = httpx.Client(base_url=base, timeout=60, follow_redirects=False)

    def _request(self, step: str, method: str, url: str, **kw) -> httpx.Response:
        if not self.budget.take():
            raise OutOfBudget
        started = time.perf_counter()
        response = self.http.request(method, url, **kw)
        self.stats.add(step, (time.perf_counter() - started) * 1000, response.status_code,
                       response.text if response.status_code >= 400 else "")
        return response

    def journey(self) -> None:
        page = self._request("store", "GET", "/shop/")
        offered = [int(v) for v in ADD_RE.findall(page.text)]
        token = CSRF_RE.search(page.text)
        if not offered or token is None:
            self.stats.count("errors")
            return
        # A third of the customers want one of the scarce items while any is left.
        scarce = [v for v in offered if v in self.low_ids]
        variant = self.rng.choice(scarce if scarce and self.rng.random() < 0.34 else offered)
        self._request("add", "POST", "/shop/cart/add",
                      data={"csrf_token": token.group(1), "variant_id": str(variant),
                            "quantity": "1"})
        cart = self._request("cart", "GET", "/shop/cart")
        form = CHECKOUT_FORM_RE.search(cart.text)
        if form is None:  # the item sold out between the two pages: the cart is empty
            self.stats.count("refused")
            return
        data = self._fill(form.group(0))
        if data is None:
            self.stats.count("errors")
            return
        placed = self._request("checkout", "POST", "/shop/checkout", data=data)
        location = placed.headers.get("location", "")
        if placed.status_code == 302 and "/shop/o/" in location:
            self.stats.count("orders")
            self._request("order", "GET", urlsplit(location).path)
        elif placed.status_code == 422:  # refused (sold out meanwhile): the cart is kept
            self.stats.count("refused")
            self.http.cookies.clear()  # a new customer starts over with an empty cart
        else:
            self.stats.count("errors")

    def _fill(self, form: str) -> dict | None:
        token = CSRF_RE.search(form)
        manual = MANUAL_RE.findall(form)
        shipping = SHIPPING_RE.findall(form)
        if token is None or not manual or not shipping:
            return None
        fields = set(FIELD_RE.findall(form))
        values = {"name": self.rng.choice(NAMES), "phone": "9123 4567",
                  "email": "", "address": "九龍旺角彌敦道 1 號", "note": ""}
        data = {k: v for k, v in values.items() if k in fields}
        data.update(csrf_token=token.group(1), payment_method=self.rng.choice(manual),
                    shipping_method=self.rng.choice(shipping))
        return data

    def run(self) -> None:
        try:
            while True:
                try:
                    self.journey()
                except OutOfBudget:
                    return
                except httpx.HTTPError:
                    self.stats.count("errors")
                    if time.monotonic() >= self.budget.deadline:
                        return
        finally:
            self.http.close()


def run_clients(base: str, clients: int, seconds: float, max_requests: int,
                low_ids: list[int]) -> tuple[Stats, float]:
    """Run ``clients`` customers at once; returns their stats and the wall time."""
    stats, budget = Stats(), Budget(seconds, max_requests)
    customers = [Customer(base, budget, stats, low_ids, seed=i) for i in range(clients)]
    # The clock starts once every client exists (an httpx client takes a while to make).
    budget.deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=c.run, daemon=True) for c in customers]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return stats, time.perf_counter() - started
