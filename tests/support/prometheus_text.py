"""A strict reader of the Prometheus text exposition format 0.0.4, for the tests of GET /metrics.

prometheus_client is not a dependency; this checks what a scraper relies on: HELP and TYPE once per family,
before its samples, samples of a family together, metric and label names, escaped label values, numbers.
"""

import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _labels(text):
    out, pos = {}, 0
    while pos < len(text):
        match = LABEL.match(text, pos)
        if not match:
            raise ValueError("bad labels: %r" % text)
        value = match.group(2).replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        if match.group(1) in out:
            raise ValueError("label %s twice" % match.group(1))
        out[match.group(1)] = value
        pos = match.end()
    return out


def _header(families, current, line):
    """Take a HELP or TYPE line; returns the family it describes."""
    word, name, rest = line[2:6], *(line[7:].split(" ", 1) + [""])[:2]
    if not re.fullmatch(NAME, name):
        raise ValueError("bad metric name %r" % name)
    if name != current:
        if name in families:
            raise ValueError("%s described twice" % name)
        families[name] = {"type": None, "help": None, "samples": []}
    if families[name]["samples"] or families[name][word.lower()] is not None:
        raise ValueError("%s: %s after samples or twice" % (name, word))
    if word == "TYPE" and rest not in TYPES:
        raise ValueError("%s: type %r" % (name, rest))
    families[name][word.lower()] = rest
    return name


def parse(text):
    """{name: {"type", "help", "samples": [(labels dict, float)]}}; ValueError on anything malformed."""
    if not text.endswith("\n"):
        raise ValueError("the exposition must end with a newline")
    families, current = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            current = _header(families, current, line)
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        if not match:
            raise ValueError("bad sample line %r" % line)
        name = match.group(1)
        if name != current or families[name]["type"] is None or families[name]["help"] is None:
            raise ValueError("%s: sample without HELP and TYPE before it, or not with its family" % name)
        families[name]["samples"].append((_labels(match.group(2) or ""), float(match.group(3))))
    return families


def value(families, name, **labels):
    """The value of the one sample of ``name`` with exactly ``labels``; KeyError when absent."""
    for found, number in families[name]["samples"]:
        if found == labels:
            return number
    raise KeyError("%s%r" % (name, labels))
