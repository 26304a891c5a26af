#!/usr/bin/env python3
"""Generates schema.rs, the protobuf -> JSON table used by `crate::api::protobuf`.

Re-run (from this folder) after bumping k8s-pb or k8s-openapi:

    python3 generate.py > schema.rs

Inputs are the crates' sources in ~/.cargo/registry/src/*/ (override with the K8S_PB_SRC and
K8S_OPENAPI_SRC environment variables):
  * k8s-pb 0.9 (prost bindings of Kubernetes' generated.proto): messages, field tags and types;
  * k8s-openapi 0.29, feature v1_33: JSON field names (prost lost the proto names, which in
    Kubernetes equal the JSON names) and the apiVersion/kind of every top-level type.
Diagnostics (fields whose JSON name had to be guessed, embedded structs found) go to stderr.
Standard library only.
"""

import glob
import os
import re
import sys
from collections import defaultdict


def find_src(env, pattern):
    if os.environ.get(env):
        return os.environ[env]
    hits = sorted(glob.glob(os.path.expanduser(pattern)))
    if not hits:
        sys.exit(f"cannot find {pattern}; set {env}")
    return hits[-1]


PB = find_src("K8S_PB_SRC", "~/.cargo/registry/src/*/k8s-pb-0.9.0/src")
OA = find_src("K8S_OPENAPI_SRC", "~/.cargo/registry/src/*/k8s-openapi-0.29.0/src/v1_33")

# Trees of k8s-pb to include (metrics and apimachinery's test group are not served by us).
TREES = ["api", "apimachinery", "apiextensions_apiserver", "kube_aggregator"]
SKIP = ["apimachinery/pkg/apis/testapigroup"]

# Messages whose Go types have hand-written JSON forms, see mod.rs `Special`.
SPECIAL = {
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.apis.meta.v1.Duration": "Duration",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "apimachinery.pkg.apis.meta.v1.Verbs": "StringItems",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.api.resource.QuantityValue": "Quantity",
}
SPECIAL_BY_NAME = {
    "ExtraValue": "StringItems",
    "Json": "RawJson",
    "JsonSchemaPropsOrArray": "SchemaOrArray",
    "JsonSchemaPropsOrBool": "SchemaOrBool",
    "JsonSchemaPropsOrStringArray": "SchemaOrStringArray",
}

# Options types that every API group version registers (metav1.AddToGroupVersion), so clients
# may send them under their own apiVersion.
OPTIONS_KINDS = ["DeleteOptions", "CreateOptions", "UpdateOptions", "PatchOptions", "GetOptions", "ListOptions"]


def norm(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


# Go initialisms, spelled upper-case inside Kubernetes' JSON names (insecureSkipTLSVerifyBackend).
ACRONYMS = {"api", "cidr", "cpu", "csi", "dns", "http", "https", "id", "ip", "json", "tcp", "tls", "ttl", "udp", "uid", "uri", "url", "uuid"}


def lower_camel(rust):
    """Inverts prost's snake_case for a proto field name (best effort, see ACRONYMS)."""
    parts = rust.split("_")
    rest = [p.upper() if p in ACRONYMS else p[:1].upper() + p[1:] for p in parts[1:]]
    return parts[0] + "".join(rest)


# ---------------------------------------------------------------- k8s-pb

def split_top(s, sep=","):
    depth, cur, out = 0, "", []
    for ch in s:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == sep and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def inner_type(ty):
    """The element type of Option<..>/Vec<..>/Box<..>/BTreeMap<String, ..>."""
    ty = ty.replace(" ", "").replace("\n", "")
    while True:
        m = re.match(r"^(?:::)?[\w:]*?(Option|Vec|Box|BTreeMap)<(.*)>$", ty)
        if not m:
            return ty
        args = [a for a in split_top(m.group(2)) if a]
        ty = args[-1]


def resolve(module, path):
    """Resolves a Rust path relative to `module` (a list of segments) to 'a.b.c.Name'."""
    segs = path.split("::")
    if segs[0] == "crate":
        return ".".join(segs[1:])
    base = list(module)
    while segs and segs[0] == "super":
        base.pop()
        segs.pop(0)
    return ".".join(base + segs)


def parse_pb():
    messages = {}  # full name -> list of (tag, rust name, attr, type)
    resources = []  # (apiVersion, kind, full name)
    for tree in TREES:
        for path in sorted(glob.glob(f"{PB}/{tree}/**/mod.rs", recursive=True)):
            rel = os.path.relpath(os.path.dirname(path), PB)
            if any(rel.startswith(s) for s in SKIP):
                continue
            module = rel.split(os.sep)
            text = open(path).read()
            text = re.sub(r"^\s*///.*$", "", text, flags=re.M)
            for m in re.finditer(r"pub struct (\w+) \{(\}|.*?\n\})", text, flags=re.S):
                full = ".".join(module + [m.group(1)])
                fields = []
                body = m.group(2).removesuffix("}")
                for f in re.finditer(r"#\[prost\((.*?)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\s*(?=#\[prost|$)", body, flags=re.S):
                    attr, rust, ty = f.group(1), f.group(2), f.group(3)
                    tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
                    fields.append((tag, rust, attr, ty))
                messages[full] = (module, fields)
            for m in re.finditer(r"impl crate::Resource for (\w+) \{(.*?)\n\}", text, flags=re.S):
                av = re.search(r'API_VERSION: &\'static str = "([^"]*)"', m.group(2)).group(1)
                kind = re.search(r'KIND: &\'static str = "([^"]*)"', m.group(2)).group(1)
                resources.append((av, kind, ".".join(module + [m.group(1)])))
    return messages, resources


# ---------------------------------------------------------------- k8s-openapi

def definition_to_module(defn):
    """io.k8s.api.core.v1.Probe -> ('api.core.v1', 'Probe')."""
    pkg, _, name = defn.rpartition(".")
    pkg = pkg.removeprefix("io.k8s.").replace("-", "_")
    return pkg, name


def parse_openapi():
    types = {}  # (module, norm(struct)) -> {norm(json): json}
    resources = []  # (apiVersion, kind, module, struct)
    global_names = defaultdict(set)
    for path in sorted(glob.glob(f"{OA}/**/*.rs", recursive=True)):
        text = open(path).read()
        d = re.search(r"^// Generated from definition ([\w.\-]+)", text, flags=re.M)
        if not d:
            continue
        module, name = definition_to_module(d.group(1))
        fields = {}
        for j in re.findall(r'"([^"]+)" => Field::Key_\w+', text):
            fields[norm(j)] = j
            global_names[norm(j)].add(j)
        types[(module, norm(name))] = fields
        r = re.search(r"impl crate::Resource for (\w+) \{(.*?)\n\}", text, flags=re.S)
        if r:
            av = re.search(r'API_VERSION: &\'static str = "([^"]*)"', r.group(2)).group(1)
            kind = re.search(r'KIND: &\'static str = "([^"]*)"', r.group(2)).group(1)
            resources.append((av, kind, module, name))
    return types, resources, global_names


# ---------------------------------------------------------------- generation

def main():
    messages, pb_resources = parse_pb()
    oa_types, oa_resources, global_names = parse_openapi()
    names = sorted(messages)
    index = {n: i for i, n in enumerate(names)}
    by_module_norm = {(".".join(mod), norm(n.rpartition(".")[2])): n for n, (mod, _) in messages.items()}
    warn = lambda s: print(s, file=sys.stderr)

    def field_kind(full, attr, ty, module):
        """Returns the Rust expression for the field's Kind."""
        kind0 = attr.split(",")[0].strip()
        repeated = re.search(r"\brepeated\b", attr) is not None
        if kind0.startswith("btree_map") or kind0.startswith("map"):
            value = re.search(r'"string,\s*(\w+)"', attr).group(1)
            if value == "string":
                return "MapS", False
            if value == "bytes":
                return "MapB", False
            if value == "message":
                target = resolve(module, inner_type(ty))
                return f"MapM({index[target]})", False
            raise SystemExit(f"{full}: unsupported map {attr}")
        if kind0 == "message":
            target = resolve(module, inner_type(ty))
            if target not in index:
                raise SystemExit(f"{full}: unknown message {target}")
            return f"M({index[target]})", repeated
        simple = {"string": "S", "bool": "Bool", "int32": "I32", "int64": "I64", "double": "F64"}
        if kind0 in simple:
            return simple[kind0], repeated
        if kind0.startswith("bytes"):
            return "Bytes", repeated
        raise SystemExit(f"{full}: unsupported field type {attr}")

    def visible_names(full):
        """Normalized JSON keys a message contributes when inlined into its parent."""
        module, fields = messages[full]
        oa = oa_types.get((".".join(module), norm(full.rpartition(".")[2])))
        if oa:
            return set(oa)
        return {norm(rust) for _, rust, _, _ in fields}

    out_msgs = []
    inline_found, guessed = [], []
    for full in names:
        module, fields = messages[full]
        mod_s, short = ".".join(module), full.rpartition(".")[2]
        special = SPECIAL.get(full) or SPECIAL_BY_NAME.get(short) or "No"
        oa = oa_types.get((mod_s, norm(short)))
        items = []
        for tag, rust, attr, ty in sorted(fields):
            kind, repeated = field_kind(full, attr, ty, module)
            n = norm(rust)
            if oa is not None and n in oa:
                json = oa[n]
            elif oa is not None and kind.startswith("M(") and not repeated:
                # A Go struct embedded with `json:",inline"` has a proto field but no JSON key:
                # its fields appear in the parent.
                target = names[int(kind[2:-1])]
                sub = visible_names(target)
                if sub and 2 * len(sub & set(oa)) >= len(sub):
                    kind = f"Inline({kind[2:-1]})"
                    json = ""
                    inline_found.append(f"{full}.{rust} -> {target}")
                else:
                    json = lower_camel(rust)
                    guessed.append(f"{full}.{rust} -> {json} (not in openapi type)")
            elif len(global_names.get(n, ())) == 1:
                json = next(iter(global_names[n]))
                if oa is not None:
                    guessed.append(f"{full}.{rust} -> {json} (global)")
            else:
                json = lower_camel(rust)
                guessed.append(f"{full}.{rust} -> {json} (camelCase)")
            if special == "RawJson" and kind == "Bytes":
                kind = "Json"
            ctor = "r" if repeated else "f"
            items.append(f'{ctor}({tag},"{json}",{kind})')
        out_msgs.append(f'    m("{full}",{special},&[{",".join(items)}]),')

    kinds = {}
    for av, kind, full in pb_resources:
        kinds[(av, kind)] = full
    for av, kind, module, struct in oa_resources:
        full = by_module_norm.get((module, norm(struct)))
        if full is None:
            warn(f"no message for {av} {kind} ({module}.{struct})")
            continue
        kinds.setdefault((av, kind), full)
    for (av, kind), full in list(kinds.items()):
        lst = full + "List"
        if lst in index:
            kinds.setdefault((av, kind + "List"), lst)
    for kind in OPTIONS_KINDS:
        kinds.setdefault(("meta.k8s.io/v1", kind), f"apimachinery.pkg.apis.meta.v1.{kind}")

    for s in inline_found:
        warn(f"inline: {s}")
    for s in guessed:
        warn(f"guessed: {s}")

    print("// @generated by generate.py from k8s-pb 0.9 and k8s-openapi 0.29 (v1_33); do not edit.")
    print("// Re-run: `python3 generate.py > schema.rs` in this folder.")
    print("use super::table::{Kind::*, Message, Special::*, f, m, r};")
    print()
    print(f"pub(super) static MESSAGES: [Message; {len(out_msgs)}] = [")
    print("\n".join(out_msgs))
    print("];")
    print()
    print("/// (apiVersion, kind) -> index in MESSAGES, sorted for binary search.")
    print(f"pub(super) static KINDS: [(&str, &str, u16); {len(kinds)}] = [")
    for (av, kind) in sorted(kinds):
        print(f'    ("{av}","{kind}",{index[kinds[(av, kind)]]}),')
    print("];")
    print()
    print("/// Options kinds that clients send under any group version.")
    print(f"pub(super) static OPTIONS: [(&str, u16); {len(OPTIONS_KINDS)}] = [")
    for kind in sorted(OPTIONS_KINDS):
        print(f'    ("{kind}",{index["apimachinery.pkg.apis.meta.v1." + kind]}),')
    print("];")


if __name__ == "__main__":
    main()
