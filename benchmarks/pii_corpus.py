"""A labelled corpus of realistic posts with and without PII, for the redaction benchmark.

Each item: {"text": ..., "pii": [{"kind": ..., "value": ...}]}. Values span formats of
several countries; negatives are the numbers posts are full of (prices, dates, times,
versions, scores, counts, ISBNs, hashtags) that must stay.
"""

from __future__ import annotations

import random
from typing import Any

PII: dict[str, list[str]] = {
    "email": [
        "maria.garcia@gmail.com",
        "j.smith+orders@outlook.co.uk",
        "info@boulangerie-dupont.fr",
        "k.tanaka@mail.example.jp",
        "support@my-shop.com.br",
        "ANNA.MUELLER@WEB.DE",
        "raj_patel99@yahoo.in",
    ],
    "phone": [
        "+1 (415) 555-0132",
        "415-555-0199",
        "+44 20 7946 0958",
        "020 7946 0018",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "06 12 34 56 78",
        "+91 98765 43210",
        "03-1234-5678",
        "(11) 91234-5678",
        "+61 2 9374 4000",
        "555.867.5309",
        "+34 912 345 678",
    ],
    "card": [
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "3782 822463 10005",
        "6011000990139424",
        "4012 8888 8888 1881",
    ],
    "ip": ["192.168.0.14", "10.20.30.40", "203.0.113.77", "2001:db8::ff00:42:8329", "fe80::1ff:fe23:4567:890a"],
    "address": [
        "221B Baker Street",
        "1600 Pennsylvania Avenue",
        "350 Fifth Avenue",
        "10 Downing Street",
        "742 Evergreen Terrace",
        "Hauptstraße 5",
        "12 rue de Rivoli",
        "Calle Mayor 14",
        "88 Colin P Kelly Jr Street",
    ],
}
TEMPLATES: dict[str, list[str]] = {
    "email": [
        "DM me or email {v} for the details",
        "Contact: {v} 📧",
        "my new address is {v}, update your contacts",
        "send the CV to {v} before Friday",
    ],
    "phone": [
        "call me at {v} tonight",
        "Bookings: {v} ☎️",
        "lost my phone, new number {v} text me",
        "for reservations ring {v} after 6",
    ],
    "card": ["my card {v} got charged twice??", "Paid with {v} and still no refund", "lol someone posted card {v}"],
    "ip": ["my server at {v} keeps dropping", "blocked {v} after the brute-force attempts", "ping {v} times out"],
    "address": [
        "Party at {v} tonight, bring snacks!",
        "we moved to {v}, come visit",
        "package left at {v} again 🙄",
        "the shop at {v} is closing down",
    ],
}
NEGATIVES = [
    "Only $1,299.99 for the new laptop, down from $1,499",
    "Prix: 1.299,00 € jusqu'au 30/11",
    "Concert on 25.11.2026 at 18:30, doors 17:45",
    "Release notes for iOS 17.4.1 and macOS 14.4",
    "Final score 2-1, attendance 45,000 #WorldCup2026",
    "Our video just hit 1,234,567 views!!",
    "Order #A12345 shipped, tracking soon",
    "ISBN 978-3-16-148410-0 is the second edition",
    "From 1999-2004 I lived in Leeds",
    "Python 3.11.7 and numpy 2.4.6 are out",
    "#covid19 cases up 12.5% this week",
    "Meeting moved to 2026-12-01 10:00 UTC",
    "Top 10 albums of 2025, no. 7 will surprise you",
    "I ran 10.5 km in 52:30 today 🏃",
    "Temperatures between -3 and 12 degrees, 80% rain",
    "Flight BA 2490 delayed by 45 minutes",
    "Room 204, building 3, floor 2",
    "Load is 0.75 0.80 0.91 on the box",
    "Chapter 12, verses 3-17",
    "version 10.0.1 fixes the login bug",
    "We raised £25,000 for charity!",
    "Bus 73 every 12 minutes",
    "the 2024/25 season was wild",
    "@user happy birthday!! 🎂 #30th",
]


def corpus(seed: int = 42, per_kind: int = 40) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    for kind, values in PII.items():
        for index in range(per_kind):
            value = values[index % len(values)]
            text = rng.choice(TEMPLATES[kind]).format(v=value)
            pii = [{"kind": kind, "value": value}]
            if rng.random() < 0.25:  # a second kind in the same post
                other = rng.choice([k for k in PII if k != kind])
                second = rng.choice(PII[other])
                text += " " + rng.choice(TEMPLATES[other]).format(v=second)
                pii.append({"kind": other, "value": second})
            items.append({"text": text, "pii": pii})
    items += [{"text": text, "pii": []} for text in NEGATIVES]
    rng.shuffle(items)
    return items


# Written after the patterns were tuned on ``corpus()`` and never tuned on:
# the honest estimate.
HELD_OUT: list[dict[str, Any]] = [
    {
        "text": "reach the team at hello@studio-nord.dk or +45 32 12 34 56",
        "pii": [{"kind": "email", "value": "hello@studio-nord.dk"}, {"kind": "phone", "value": "+45 32 12 34 56"}],
    },
    {"text": "Whatsapp me 07700 900123 if you want the tickets", "pii": [{"kind": "phone", "value": "07700 900123"}]},
    {"text": "my number changed to (202) 555-0147, save it", "pii": [{"kind": "phone", "value": "(202) 555-0147"}]},
    {"text": "call +81 90-1234-5678 when you land", "pii": [{"kind": "phone", "value": "+81 90-1234-5678"}]},
    {"text": "Tel. 030 12345678 (Praxis)", "pii": [{"kind": "phone", "value": "030 12345678"}]},
    {"text": "text 5551234567 for the code", "pii": [{"kind": "phone", "value": "5551234567"}]},
    {"text": "visa 4242424242424242 exp 04/27 lol", "pii": [{"kind": "card", "value": "4242424242424242"}]},
    {"text": "mastercard 5105 1051 0510 5100 declined", "pii": [{"kind": "card", "value": "5105 1051 0510 5100"}]},
    {"text": "admin panel open on 172.16.254.1:8080", "pii": [{"kind": "ip", "value": "172.16.254.1"}]},
    {"text": "IPv6 ::ffff:c000:280 shows in the logs", "pii": [{"kind": "ip", "value": "::ffff:c000:280"}]},
    {"text": "Drop it off at 1 Infinite Loop, Cupertino", "pii": [{"kind": "address", "value": "1 Infinite Loop"}]},
    {"text": "new flat: 45 Queen's Road, Brighton", "pii": [{"kind": "address", "value": "45 Queen's Road"}]},
    {"text": "Wir wohnen jetzt in der Bergmannstraße 102", "pii": [{"kind": "address", "value": "Bergmannstraße 102"}]},
    {
        "text": "rdv au 8 avenue des Champs-Élysées demain",
        "pii": [{"kind": "address", "value": "8 avenue des Champs-Élysées"}],
    },
    {
        "text": "mail me: first.last@uni-heidelberg.de 🙏",
        "pii": [{"kind": "email", "value": "first.last@uni-heidelberg.de"}],
    },
    {
        "text": "contact ＪＯＨＮ＠ＥＸＡＭＰＬＥ．ＣＯＭ for info",
        "pii": [{"kind": "email", "value": "ＪＯＨＮ＠ＥＸＡＭＰＬＥ．ＣＯＭ"}],
    },
    {
        "text": "john dot doe at gmail dot com, no spam pls",
        "pii": [{"kind": "email", "value": "john dot doe at gmail dot com"}],
    },
    {"text": "The 2026 budget is 4.5 billion, up 3.2%", "pii": []},
    {"text": "Patch 1.24.3 drops on 12/03, servers down 02:00-04:00", "pii": []},
    {"text": "Lakers won 112-108 in OT!!", "pii": []},
    {"text": "It's 20:45 and I'm still at work #mondays", "pii": []},
    {"text": "Tickets €49.90, limited to 2 per person", "pii": []},
    {"text": "call of duty season 4 is 2024's best", "pii": []},
    {"text": "GPS 48.8584, 2.2945 is the Eiffel Tower", "pii": []},
    {"text": "ref 2025-0042-17 in your reply please", "pii": []},
    {"text": "Top speed 320 km/h, 0-100 in 2.9 s", "pii": []},
    {"text": "#ad use code SAVE20 for 20% off", "pii": []},
    {"text": "population 8 336 817 in 2022 (census)", "pii": []},
]
