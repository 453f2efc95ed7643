"""Write the shipped GOV.UK-style sample exports (data/phase1, data/phase2) in Prodigy's JSONL shape.

The sentences are written for this project from templates and slot values; the output is deterministic
for a given seed. Run from the project root: `python scripts/make_sample_data.py`.
"""

from __future__ import annotations

import json
import random
import re
import zlib
from pathlib import Path
from typing import Dict, List

import spacy

SLOT = re.compile(r"\{([A-Z]+)\}")

PHASE1_VALUES: Dict[str, List[str]] = {
    "MONEY": ["£120", "£1,500", "£35.50", "£2 million", "£9.60", "£250", "£13,000", "£75 a week",
              "£400", "£4,800", "£60", "£1.2 billion", "£19.99", "£850", "£3,200"],
    "FORM": ["form SA100", "form P60", "form P45", "VAT1", "form CH2", "SA302", "form P87",
             "form DS-160", "form N1", "PA1", "form C1", "form AP1", "IHT400", "form V62", "form D1"],
    "PERSON": ["Sarah Ahmed", "John Smith", "Priya Patel", "Gareth Jones", "Aisha Bello", "Tom Walker",
               "Fiona MacLeod", "David Chen", "Emma Hughes", "Olu Adeyemi", "Rachel Green", "Liam O'Neill",
               "Hannah Davies", "Mohammed Khan", "Claire Evans"],
    "DATE": ["31 January 2025", "5 April", "6 April 2024", "1 October 2023", "30 June", "the end of March",
             "12 May 2025", "31 July", "1 January 2026", "15 September 2024", "Monday 3 March",
             "28 February 2025", "1 April", "31 December 2024", "14 November"],
    "POSTCODE": ["SW1A 2AA", "EH1 1YZ", "CF10 3NQ", "BT1 5GS", "M1 1AE", "B33 8TH", "LS1 4AP", "G2 1DY",
                 "NE1 4ST", "BS1 6AH", "L3 9PP", "SE1 7PB", "CR2 6XH", "DN55 1PT", "W1A 1AA"],
    "EMAIL": ["enquiries@hmrc.gov.uk", "contact@dvla.gov.uk", "help@companieshouse.gov.uk",
              "info@ukvi.gov.uk", "support@gov.uk", "claims@dwp.gov.uk", "foi@cabinetoffice.gov.uk",
              "grants@ukri.org", "licensing@ofcom.org.uk", "appeals@justice.gov.uk",
              "pensions@dwp.gov.uk", "customs@hmrc.gov.uk", "passports@hmpo.gov.uk",
              "register@landregistry.gov.uk", "childcare@education.gov.uk"],
    "PHONE": ["0300 200 3300", "0800 731 0469", "0300 790 6801", "+44 20 7946 0018", "0345 300 3900",
              "0300 123 1234", "0800 022 4250", "0300 330 5797", "0161 496 0123", "0345 600 0823",
              "020 7215 5000", "0300 456 2369", "0800 169 0310", "0300 303 8602", "0117 496 0456"],
}

PHASE1_TEMPLATES = [
    "You must send {FORM} to HMRC by {DATE}.",
    "The grant is worth up to {MONEY} per household.",
    "Call {PHONE} if you cannot complete {FORM} online.",
    "Email {EMAIL} with your reference number and postcode.",
    "Send the completed {FORM} to the office at {POSTCODE}.",
    "{PERSON} will contact you before {DATE} to confirm the payment of {MONEY}.",
    "If your income is more than {MONEY}, you need to fill in {FORM}.",
    "The helpline ({PHONE}) is open until {DATE}.",
    "Write to {PERSON}, Case Officer, at the address ending {POSTCODE}.",
    "The fee is {MONEY} and must be paid by {DATE}.",
    "For questions about {FORM}, email {EMAIL} or call {PHONE}.",
    "Applications received after {DATE} will not be considered.",
    "Our office at {POSTCODE} is closed on bank holidays.",
    "{PERSON} signed the declaration on {DATE}.",
    "You can claim back up to {MONEY} in expenses.",
    "Contact {EMAIL} to ask for a paper copy of {FORM}.",
    "Text relay users should call {PHONE} and quote the reference.",
    "The deadline for paper returns is {DATE}.",
    "Payments of {MONEY} were made to {PERSON} in error.",
    "Post your documents to the processing centre, {POSTCODE}, within 28 days.",
    "Complaints should be emailed to {EMAIL}.",
    "Use {FORM} to tell us about a change of address.",
    "You will get a letter from {PERSON} explaining the decision.",
    "The minimum payment is {MONEY}, due on {DATE}.",
    "Find out if you need to register before applying.",
    "Check the guidance before you start your application.",
    "This service is also available in Welsh.",
]

PHASE2_VALUES: Dict[str, List[str]] = {
    "OCCUPATION": ["nurses", "teachers", "farmers", "electricians", "social workers", "solicitors",
                   "paramedics", "childminders", "lorry drivers", "pharmacists", "architects",
                   "care workers", "accountants", "police officers", "plumbers"],
    "ROLE": ["Chief Executive", "Permanent Secretary", "Registrar", "Accounting Officer", "chair of the board",
             "Senior Responsible Owner", "Director General", "Chief Inspector", "data protection officer",
             "Head of Policy", "non-executive director", "Deputy Director", "Commissioner",
             "Chief Medical Officer", "Principal Private Secretary"],
    "TITLE": ["the Prime Minister", "the Chancellor of the Exchequer", "the Home Secretary",
              "the Secretary of State for Education", "the Minister for Housing", "the Attorney General",
              "the Foreign Secretary", "the Secretary of State for Health and Social Care",
              "the Minister of State for Trade", "the Lord Chancellor", "the Paymaster General",
              "the Minister for Women and Equalities", "the Secretary of State for Defence",
              "the Economic Secretary to the Treasury", "the Minister for Skills"],
    "GPE": ["London", "Wales", "Scotland", "Northern Ireland", "England", "Manchester", "Cardiff",
            "Belfast", "Edinburgh", "Birmingham", "France", "Leeds", "Glasgow", "Bristol", "Liverpool"],
    "LOC": ["the Lake District", "the Thames Estuary", "the Peak District", "the Scottish Highlands",
            "the North Sea", "the Cairngorms", "the Norfolk Broads", "Snowdonia", "the South Downs",
            "the English Channel", "the Severn Estuary", "Dartmoor", "the Yorkshire Dales",
            "the Irish Sea", "Exmoor"],
    "FAC": ["Heathrow Airport", "the Houses of Parliament", "Dover port", "the Royal Courts of Justice",
            "the M25", "Hinkley Point power station", "the Channel Tunnel", "Gatwick Airport", "the Elizabeth line",
            "King's Cross station", "the A1", "Portsmouth Naval Base", "the Forth Bridge",
            "Birmingham New Street", "Sellafield"],
    "ORG": ["HM Revenue and Customs", "the Department for Education", "the Home Office", "the NHS",
            "Companies House", "the Environment Agency", "Ofsted", "the Cabinet Office", "the DVLA",
            "HM Treasury", "the Met Office", "Ofcom", "the Ministry of Defence", "UK Visas and Immigration",
            "the Land Registry"],
    "EVENT": ["the Spending Review", "the general election", "COP26", "the Autumn Statement",
              "the coronation", "the Budget", "the 2012 Olympic Games", "London Fashion Week",
              "the Queen's Speech", "the census", "Armed Forces Day", "the Commonwealth Games",
              "the King's Birthday Honours", "Remembrance Sunday", "the spring statement"],
}

PHASE2_TEMPLATES = [
    "{TITLE} announced new funding for {OCCUPATION} in {GPE}.",
    "The {ROLE} of {ORG} gave evidence to the committee.",
    "Flood warnings are in place across {LOC}.",
    "Work on {FAC} will continue until after {EVENT}.",
    "{ORG} has published guidance for {OCCUPATION} working in {GPE}.",
    "{TITLE} visited {FAC} ahead of {EVENT}.",
    "The new {ROLE} will start in {GPE} next month.",
    "Visitors to {LOC} should check the weather forecast before travelling.",
    "{ORG} confirmed that {OCCUPATION} are eligible for the scheme.",
    "The statement was made by {TITLE} during {EVENT}.",
    "Delays are expected near {FAC} because of engineering work.",
    "{ORG} appointed a new {ROLE} in {GPE}.",
    "Wildlife surveys in {LOC} are run by {ORG}.",
    "{TITLE} wrote to {OCCUPATION} about changes to pay.",
    "Security at {FAC} will be increased for {EVENT}.",
    "The {ROLE} is accountable to Parliament for spending.",
    "Registered {OCCUPATION} in {GPE} must renew their licence every year.",
    "A consultation on protecting {LOC} was launched by {ORG}.",
    "Plans for {EVENT} were set out by {TITLE}.",
    "{ORG} moved its headquarters from {GPE} to {FAC}.",
    "Read the guidance before you apply.",
    "This page was updated to reflect the latest figures.",
    "You can request this document in an accessible format.",
]


def fill(template: str, values: Dict[str, List[str]], rng: random.Random):
    """Fill a template; returns the text and the char spans of each filled slot."""
    text, spans, pos = "", [], 0
    for match in SLOT.finditer(template):
        text += template[pos : match.start()]
        label = match.group(1)
        value = rng.choice(values[label])
        start = len(text)
        text += value
        spans.append((start, len(text), label))
        pos = match.end()
    text += template[pos:]
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text, spans


def to_prodigy(text: str, spans, nlp) -> dict:
    doc = nlp(text)
    tokens = [
        {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
        for t in doc
    ]
    out_spans = []
    for start, end, label in spans:
        span = doc.char_span(start, end, label=label, alignment_mode="strict")
        if span is None:  # the tokenizer split inside a value: never happens with these values
            raise ValueError(f"{text[start:end]!r} is not on token boundaries in {text!r}")
        out_spans.append(
            {"start": start, "end": end, "token_start": span.start, "token_end": span.end - 1, "label": label}
        )
    input_hash = zlib.crc32(text.encode("utf-8")) - 2**31
    task_hash = zlib.crc32(json.dumps(out_spans).encode("utf-8") + text.encode("utf-8")) - 2**31
    return {
        "text": text,
        "meta": {"source": "GOV.UK-style sample written for ner-runner"},
        "_input_hash": input_hash,
        "_task_hash": task_hash,
        "tokens": tokens,
        "spans": out_spans,
        "_view_id": "ner_manual",
        "answer": "accept",
    }


def make_split(templates, values, n: int, rng: random.Random, nlp, seen: set) -> List[dict]:
    """`n` unique examples; values are drawn from the given pools only."""
    rows: List[dict] = []
    order = list(templates)
    while len(rows) < n:
        rng.shuffle(order)
        for template in order:
            if len(rows) >= n:
                break
            text, spans = fill(template, values, rng)
            if text in seen:
                continue
            seen.add(text)
            rows.append(to_prodigy(text, spans, nlp))
    return rows


def main(seed: int = 13) -> None:
    nlp = spacy.blank("en")
    root = Path(__file__).resolve().parent.parent / "data"
    for phase, templates, values in (
        ("phase1", PHASE1_TEMPLATES, PHASE1_VALUES),
        ("phase2", PHASE2_TEMPLATES, PHASE2_VALUES),
    ):
        rng = random.Random(f"{phase}-{seed}")
        seen: set = set()
        # The last four values of each pool never appear in train, so about a quarter of dev's
        # entities are unseen names, forms and places rather than memorised ones.
        train_values = {label: pool[:-4] for label, pool in values.items()}
        for split, n, pools in (("train", 200, train_values), ("dev", 60, values)):
            rows = make_split(templates, pools, n, rng, nlp, seen)
            labels = {s["label"] for r in rows for s in r["spans"]}
            missing = set(values) - labels
            assert not missing, f"{phase}/{split} lacks {missing}"
            out = root / phase / f"{split}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            print(f"{out}: {len(rows)} examples")


if __name__ == "__main__":
    main()
