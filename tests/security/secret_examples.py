"""Examples for the output checks, written for these tests (not taken from the dev corpus).

Secrets are generated from a seeded RNG in each provider's published shape; checksummed
numbers use the networks' and banks' public test values or get their check digits computed
here, independently of the validators under test.
"""

from __future__ import annotations

import base64
import json
import random
import string

ALNUM = string.ascii_letters + string.digits
rng = random.Random(20240611)


def token(size: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


def b64url(data: dict[str, object] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: dict[str, object], alg: str = "HS256") -> str:
    signature = b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{b64url({'alg': alg, 'typ': 'JWT'})}.{b64url(claims)}.{signature}"


def pem(label: str = "", lines: int = 6) -> str:
    body = "\n".join(token(64, ALNUM + "+/") for _ in range(lines)) + "\n" + token(20) + "=="
    kind = f"{label} PRIVATE KEY" if label else "PRIVATE KEY"
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def luhn_complete(prefix: str, length: int) -> str:
    """A card number: ``prefix``, random digits, and the Luhn check digit."""
    digits = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d)
        if i % 2 == 0:  # these are doubled once the check digit is appended
            n = n * 2 - 9 if n * 2 > 9 else n * 2
        total += n
    return digits + str((10 - total % 10) % 10)


def spaced(number: str, groups: tuple[int, ...], sep: str = " ") -> str:
    out, at = [], 0
    for size in groups:
        out.append(number[at : at + size])
        at += size
    return sep.join(out)


OPENAI = "sk-proj-" + token(74) + "T3BlbkFJ" + token(74)
OPENAI_LEGACY = "sk-" + token(20) + "T3BlbkFJ" + token(20)
ANTHROPIC = "sk-ant-api03-" + token(93, ALNUM + "-_") + "AA"
GITHUB = "ghp_" + token(36)
GITHUB_PAT = "github_pat_" + token(22) + "_" + token(59)
SLACK = f"xoxb-{token(11, string.digits)}-{token(12, string.digits)}-{token(24)}"
STRIPE = "sk_live_" + token(24)
GOOGLE = "AIza" + token(35, ALNUM + "-_")
AWS_ID = "AKIA" + token(16, string.ascii_uppercase + "234567")
AWS_SECRET = token(40, ALNUM + "/+")
SESSION_JWT = jwt({"sub": "1029", "email": "pat@example.net", "iat": 1700000000})
LONG_JWT = jwt({"sub": "77", "groups": [f"group-{i}" for i in range(60)], "iat": 1700000000})
RSA_KEY = pem("RSA", lines=12)
VISA = luhn_complete("4", 16)
MASTERCARD = luhn_complete("53", 16)
AMEX = luhn_complete("37", 15)


# (text, the finding's text, type): one or more per type, in several shapes.
POSITIVES: list[tuple[str, str, str]] = [
    (f"Use this key: {OPENAI} (rotate it)", OPENAI, "OPENAI_KEY"),
    (f'client = OpenAI(api_key="{OPENAI_LEGACY}")', OPENAI_LEGACY, "OPENAI_KEY"),
    (f"ANTHROPIC_API_KEY={ANTHROPIC}", ANTHROPIC, "ANTHROPIC_KEY"),
    (f"git remote set-url origin https://{GITHUB}@github.com/acme/app.git", GITHUB, "GITHUB_TOKEN"),
    (f"token: {GITHUB_PAT}\n", GITHUB_PAT, "GITHUB_TOKEN"),
    (f"SLACK_BOT_TOKEN='{SLACK}'", SLACK, "SLACK_TOKEN"),
    (f"stripe.api_key = '{STRIPE}'", STRIPE, "STRIPE_KEY"),
    (f'<script src="https://maps.example/js?key={GOOGLE}"></script>', GOOGLE, "GOOGLE_API_KEY"),
    (f"[default]\naws_access_key_id = {AWS_ID}\n", AWS_ID, "AWS_ACCESS_KEY"),
    (f"aws_secret_access_key = {AWS_SECRET}\n", AWS_SECRET, "AWS_SECRET_KEY"),
    (f"Access key {AWS_ID}, secret {AWS_SECRET}.", AWS_SECRET, "AWS_SECRET_KEY"),
    (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET, "AWS_SECRET_KEY"),
    (f"Authorization: Bearer {SESSION_JWT}", SESSION_JWT, "JWT"),
    (f"The cookie was {SESSION_JWT}.", SESSION_JWT, "JWT"),
    (f"Here it is:\n{RSA_KEY}\nKeep it safe.", RSA_KEY, "PRIVATE_KEY"),
    ("DB_PASSWORD=Zq8vN2mK4pL9xR7tW3yB", "Zq8vN2mK4pL9xR7tW3yB", "GENERIC_SECRET"),
    # a password in a URL's user info, however short: it is a password by its place
    (
        "Set DATABASE_URL=postgres://admin:S3cr3tPassw0rd@db.internal:5432/app and restart.",
        "S3cr3tPassw0rd",
        "GENERIC_SECRET",
    ),
    ("broker: amqp://guest:hunter2@rabbit:5672/", "hunter2", "GENERIC_SECRET"),
    ("REDIS_URL=redis://:p4ss-w0rd@cache:6379/0", "p4ss-w0rd", "GENERIC_SECRET"),
    (
        '{"client_secret": "b3f1c9e0a7d24f6e8c5b1a9d0e7f3c2a"}',
        "b3f1c9e0a7d24f6e8c5b1a9d0e7f3c2a",
        "GENERIC_SECRET",
    ),
    (
        "curl -H 'Authorization: Bearer 7Fq2LmZx9RtV4wYpK8sN3bHd' url",
        "7Fq2LmZx9RtV4wYpK8sN3bHd",
        "GENERIC_SECRET",
    ),
    (
        "Write to maria.lopez@northwind-traders.example.",
        "maria.lopez@northwind-traders.example",
        "EMAIL",
    ),
    ("cc: j.o-brien+alerts@mail.co.uk", "j.o-brien+alerts@mail.co.uk", "EMAIL"),
    ("IBAN: DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX", "DE89 3704 0044 0532 0130 00", "IBAN"),
    ("Pay to GB82WEST12345698765432 today", "GB82WEST12345698765432", "IBAN"),
    ("Konto FR14 2004 1010 0505 0001 3M02 606.", "FR14 2004 1010 0505 0001 3M02 606", "IBAN"),
    ("rekening NL91ABNA0417164300", "NL91ABNA0417164300", "IBAN"),
    ("IBAN DE89.3704.0044.0532.0130.00.", "DE89.3704.0044.0532.0130.00", "IBAN"),  # dotted
    ("virement FR76-3000-6000-0112-3456-7890-189", "FR76-3000-6000-0112-3456-7890-189", "IBAN"),
    (
        f"Card number {spaced(VISA, (4, 4, 4, 4))}, exp 09/27",
        spaced(VISA, (4, 4, 4, 4)),
        "CREDIT_CARD",
    ),
    (
        f"charged to {spaced(MASTERCARD, (4, 4, 4, 4), '-')}.",
        spaced(MASTERCARD, (4, 4, 4, 4), "-"),
        "CREDIT_CARD",
    ),
    (f"amex {spaced(AMEX, (4, 6, 5))}", spaced(AMEX, (4, 6, 5)), "CREDIT_CARD"),
    ("test card 5555555555554444 works", "5555555555554444", "CREDIT_CARD"),
    # grouped with no-break spaces (word processors) or dots
    (
        "card 5555\u00a05555\u00a05555\u00a04444 kept",
        "5555\u00a05555\u00a05555\u00a04444",
        "CREDIT_CARD",
    ),
    ("card 5555.5555.5555.4444 kept", "5555.5555.5555.4444", "CREDIT_CARD"),
    (
        "IBAN DE89\u202f3704\u202f0044\u202f0532\u202f0130\u202f00 due",
        "DE89\u202f3704\u202f0044\u202f0532\u202f0130\u202f00",
        "IBAN",
    ),
    ("SSN: 219-48-3321.", "219-48-3321", "US_SSN"),
    ("social security number 521 77 8412", "521 77 8412", "US_SSN"),
    ("Call +1 (650) 253-0000 or +44 20 7946 0958.", "+1 (650) 253-0000", "PHONE"),
    ("Call +1 (650) 253-0000 or +44 20 7946 0958.", "+44 20 7946 0958", "PHONE"),
    ("office (212) 736-5000, ext 4", "(212) 736-5000", "PHONE"),
    ("text 312.555.7788 after 5", "312.555.7788", "PHONE"),
    ("toll free 1-800-275-2273", "1-800-275-2273", "PHONE"),
    ("dial 1 (415) 555-2671 now", "1 (415) 555-2671", "PHONE"),
    ("at +1 415 555 2671 5 pm", "+1 415 555 2671", "PHONE"),
    ("Mobil: 0151 23456789", "0151 23456789", "PHONE"),
    ("Tél. 06 12 34 56 78", "06 12 34 56 78", "PHONE"),
    ("whatsapp +4917612345678!", "+4917612345678", "PHONE"),
    ("the host 203.0.113.45 refused", "203.0.113.45", "IP_ADDRESS"),
    ("bind to 10.0.0.12:8443", "10.0.0.12", "IP_ADDRESS"),
    ("from 2001:db8:85a3::8a2e:370:7334 via", "2001:db8:85a3::8a2e:370:7334", "IP_ADDRESS"),
    ("link-local fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a", "IP_ADDRESS"),
]

# Texts in which nothing must be found: each look-alike kind the checks must leave alone.
LOOKALIKES: list[str] = [
    "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app (the password comes from a secret)",
    "git clone git@github.com:acme/widgets.git, then open http://[::1]:8080/ and ftp://anon:@host",
    "Order ORD-2024-118532 ships with UPS 1Z999AA10123456784.",
    "Request id 3f2b8c1e-9d4a-4e7b-a1c2-5f6e7d8c9b0a failed twice.",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (abbrev 9fceb02)",
    "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "md5 d41d8cd98f00b204e9800998ecf8427e of the empty file",
    "Ledger reference 4111111111111112 (not a card: the checksum fails).",
    "ISBN 978-0-306-40615-7, EAN 9780306406157",
    "That IBAN, DE89 3704 0044 0532 0130 01, has a wrong check digit.",
    "So does DE89.3704.0044.0532.0130.01; DE89.3704-0044.0532.0130.00 mixes its separators.",
    "Fixture SSNs 000-12-3456, 666-45-6789 and 912-34-5678 are never issued.",
    "Released v2.14.3.1 on 2024-03-15 at 10:45:00; build 20240315.1",
    "version 1.2.3.4 of the agent, netmask 255.255.255.0, localhost 127.0.0.1",
    "MAC 00:1A:2B:3C:4D:5E, time 12:34:56, std::vector<int>, a[1::2]",
    "Set OPENAI_API_KEY=sk-your-key-here or sk-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX.",
    "Example from the docs: AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "token_count: 128000, max_tokens = 4096, tokenizer=cl100k_base",
    "password: <your-password>, api_key: ${API_KEY}, secret = changeme-in-production",
    "Invoice INV-2023-00042 for $1,234.56 due 30/06/2024; call ext. 4521.",
    "Population 8 045 311 447 in 2023; pi is 3.14159265358979.",
    "Ship to 1600 Amphitheatre Parkway, order #415-555-01",
    "Use git@github.com:acme/app.git and the logo@2x.png asset.",
    "The header looks like -----BEGIN PRIVATE KEY----- followed by base64.",
    "See https://example.com/items/7b3e2f1a9c8d and ticket JIRA-4521.",
    "coordinates 40.7128, -74.0060; temperature 21.5 C; ratio 16:9",
    "Ports 8080, 5432 and 6379; PID 48213; exit code 137.",
]
