#!/usr/bin/env python3
"""Writes a JSON order valid against bench/schemas/order.json of exactly SIZE bytes.

    gen_order.py SIZE OUTFILE

Items are added while they fit; the remaining bytes go into the `note` string."""
import json
import sys

size, path = int(sys.argv[1]), sys.argv[2]
order = {
    "order_id": "ord_0123456789abcdef",
    "customer": {"id": 4242, "email": "buyer@example.com", "vip": False},
    "currency": "EUR",
    "items": [],
    "total": 0.0,
    "note": "",
}


def dump(o):
    return json.dumps(o, separators=(",", ":"))


i = 0
while True:
    item = {"sku": "ABC-%05d" % (i % 100000), "qty": 1 + i % 9, "price": 9.99 + i % 50,
            "tags": ["bench", "t%d" % (i % 7)]}
    order["items"].append(item)
    order["total"] = round(sum(x["qty"] * x["price"] for x in order["items"]), 2)
    if len(dump(order)) > size - 16:  # keep room for the note
        order["items"].pop()
        order["total"] = round(sum(x["qty"] * x["price"] for x in order["items"]), 2)
        break
    i += 1
if not order["items"]:
    sys.exit("size %d too small for one item" % size)
pad = size - len(dump(order))
order["note"] = "x" * pad
body = dump(order).encode()
assert len(body) == size, (len(body), size)
with open(path, "wb") as f:
    f.write(body)
print("%s: %d bytes, %d items" % (path, len(body), len(order["items"])))
