"""Element-by-element comparison of two inlined HTML documents (pigeon's and juice's),
with Python's html.parser as a third, independent reader of both.

Each document becomes the list of its elements in order, leaving out the ones only one
parser creates (gumbo inserts <tbody>, <html>, <head>, <body> as the HTML5 algorithm
says; cheerio does not). Each element gives its tag, its style as a property -> value map
(values with whitespace collapsed and double quotes as single, as juice writes them),
and the table attributes juice sets (width, height, bgcolor, align, valign, background).
"""
from html.parser import HTMLParser
import re

IMPLIED = {"html", "head", "body", "tbody"}
ATTRS = ("width", "height", "bgcolor", "align", "valign", "background")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
        "param", "source", "track", "wbr"}


def style_map(style):
    out = {}
    for decl in re.split(r";(?![^(]*\))", style or ""):
        if ":" not in decl:
            continue
        prop, value = decl.split(":", 1)
        prop = prop.strip().lower()
        value = " ".join(value.replace('"', "'").split())
        if prop:
            out[prop] = value
    return out


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.in_style = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag not in IMPLIED:
            self.elements.append((tag, style_map(a.get("style")),
                                  {k: a[k] for k in ATTRS if a.get(k) is not None}))

    handle_startendtag = handle_starttag


def elements(html):
    p = _Elements()
    p.feed(html)
    p.close()
    return p.elements


def compare(ours, theirs):
    """Returns (elements compared, list of differences as dicts)."""
    a, b = elements(ours), elements(theirs)
    diffs = []
    # Skip <style> elements: pigeon keeps one in <head>, juice keeps its own.
    a = [e for e in a if e[0] != "style"]
    b = [e for e in b if e[0] != "style"]
    if [e[0] for e in a] != [e[0] for e in b]:
        ta, tb = [e[0] for e in a], [e[0] for e in b]
        i = next(i for i in range(min(len(ta), len(tb)) + 1)
                 if i >= len(ta) or i >= len(tb) or ta[i] != tb[i])
        return 0, [{"kind": "structure", "at": i, "ours": ta[i:i + 5], "juice": tb[i:i + 5]}]
    for i, (x, y) in enumerate(zip(a, b)):
        for prop in sorted(set(x[1]) | set(y[1])):
            if x[1].get(prop) != y[1].get(prop):
                diffs.append({"kind": "style", "at": i, "tag": x[0], "prop": prop,
                              "ours": x[1].get(prop), "juice": y[1].get(prop)})
        for attr in ATTRS:
            if x[2].get(attr) != y[2].get(attr):
                diffs.append({"kind": "attr", "at": i, "tag": x[0], "prop": attr,
                              "ours": x[2].get(attr), "juice": y[2].get(attr)})
    return len(a), diffs
