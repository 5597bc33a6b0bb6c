"""Offline checks of a Terraform module (Terraform itself cannot be installed here).

  python3 deploy/tools/check_terraform.py terraform/hetzner

  - every *.tf file and terraform.tfvars.example parses (python-hcl2);
  - every variable has a description and a type, and a validation block unless listed in
    NO_VALIDATION; sensitive-looking ones (token, password, secret) are marked sensitive;
  - every var.X, local.X, data.T.N and resource reference T.N (provider resource types)
    points at something declared in the module; no variable is declared and never used;
  - every output has a description and references at least one declared resource, local
    or variable; resources referenced by outputs exist;
  - every key of terraform.tfvars.example is a declared variable;
  - required_providers pins a version for each provider used.
Exit status 1 on any failure.
"""

import glob
import os
import re
import sys

import hcl2

NO_VALIDATION = {"image"}
RESOURCE_PREFIXES = ("hcloud_",)
REF_VAR = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
REF_LOCAL = re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_-]*)")
REF_DATA = re.compile(r"\bdata\.([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)")
REF_RES = re.compile(r"(?<![\w.\"])((?:%s)[a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_-]*)"
                     % "|".join(RESOURCE_PREFIXES))


def unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def strings(node):
    """Every string value in a parsed block (keys excluded, comments never parsed)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("__"):
                continue
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def named(blocks):
    """[{'"name"': {...}}] -> {name: body}"""
    out = {}
    for b in blocks or []:
        for k, v in b.items():
            if not k.startswith("__"):
                out[unquote(k)] = v
    return out


def main():
    module = sys.argv[1]
    fails = []
    variables, outputs, locals_, resources, data, providers_used = {}, {}, set(), set(), set(), set()
    required = {}
    bodies = []  # (file, label, body) for reference checks
    files = sorted(glob.glob(os.path.join(module, "*.tf")))
    if not files:
        print(f"  FAIL no .tf files in {module}")
        sys.exit(1)
    for f in files:
        try:
            with open(f) as fh:
                doc = hcl2.load(fh)
        except Exception as e:  # parse errors come in many classes
            fails.append(f"{f}: does not parse: {str(e).splitlines()[0][:200]}")
            continue
        for name, body in named(doc.get("variable")).items():
            variables[name] = body
            bodies.append((f, f"variable {name}", body))
        for name, body in named(doc.get("output")).items():
            outputs[name] = body
            bodies.append((f, f"output {name}", body))
        for block in doc.get("locals") or []:
            for k, v in block.items():
                if not k.startswith("__"):
                    locals_.add(k)
                    bodies.append((f, f"local {k}", v))
        for block in doc.get("resource") or []:
            for rtype, named_bodies in block.items():
                if rtype.startswith("__"):
                    continue
                rtype = unquote(rtype)
                providers_used.add(rtype.split("_")[0])
                for rname, body in named_bodies.items():
                    if rname.startswith("__"):
                        continue
                    resources.add((rtype, unquote(rname)))
                    bodies.append((f, f"resource {rtype}.{unquote(rname)}", body))
        for block in doc.get("data") or []:
            for dtype, named_bodies in block.items():
                if dtype.startswith("__"):
                    continue
                for dname in named_bodies:
                    if not dname.startswith("__"):
                        data.add((unquote(dtype), unquote(dname)))
                        bodies.append((f, f"data {dtype}.{dname}", named_bodies[dname]))
        for block in doc.get("provider") or []:
            for pname, body in block.items():
                if not pname.startswith("__"):
                    bodies.append((f, f"provider {pname}", body))
        for block in doc.get("terraform") or []:
            for rp in block.get("required_providers") or []:
                for k, v in rp.items():
                    if not k.startswith("__"):
                        required[k] = v

    # variables: documented, typed, validated
    for name, body in variables.items():
        if not unquote(body.get("description", "")).strip():
            fails.append(f"variable {name}: no description")
        if "type" not in body:
            fails.append(f"variable {name}: no type")
        if name not in NO_VALIDATION and not body.get("validation"):
            fails.append(f"variable {name}: no validation block")
        if re.search(r"token|password|secret", name) and body.get("sensitive") is not True:
            fails.append(f"variable {name}: looks secret but is not sensitive = true")

    # references
    used_vars = set()
    declared_res = {f"{t}.{n}" for t, n in resources}
    for f, label, body in bodies:
        for s in strings(body):
            for v in REF_VAR.findall(s):
                used_vars.add(v)
                if v not in variables:
                    fails.append(f"{os.path.basename(f)}: {label} uses undeclared var.{v}")
            for loc in REF_LOCAL.findall(s):
                if loc not in locals_:
                    fails.append(f"{os.path.basename(f)}: {label} uses undeclared local.{loc}")
            for t, n in REF_DATA.findall(s):
                if (t, n) not in data:
                    fails.append(f"{os.path.basename(f)}: {label} uses undeclared data.{t}.{n}")
            for t, n in REF_RES.findall(s):
                if f"{t}.{n}" not in declared_res:
                    fails.append(f"{os.path.basename(f)}: {label} references {t}.{n}, "
                                 "which no resource block declares")
    for name in variables:
        if name not in used_vars:
            fails.append(f"variable {name}: declared but never used")

    # outputs: documented and wired to something real
    for name, body in outputs.items():
        if not unquote(body.get("description", "")).strip():
            fails.append(f"output {name}: no description")
        text = " ".join(strings(body.get("value", "")))
        refs = REF_RES.findall(text) + REF_LOCAL.findall(text) + REF_VAR.findall(text)
        if not refs:
            fails.append(f"output {name}: references no resource, local or variable")

    # providers pinned
    for p in sorted(providers_used):
        spec = required.get(p)
        if not spec or "version" not in (spec if isinstance(spec, dict) else {}):
            fails.append(f"provider {p}: not pinned in terraform.required_providers")

    # example tfvars
    example = os.path.join(module, "terraform.tfvars.example")
    if os.path.exists(example):
        try:
            with open(example) as fh:
                tfvars = hcl2.load(fh)
            for k in tfvars:
                if not k.startswith("__") and k not in variables:
                    fails.append(f"terraform.tfvars.example: {k} is not a declared variable")
        except Exception as e:
            fails.append(f"terraform.tfvars.example: does not parse: {str(e).splitlines()[0][:200]}")

    for msg in fails:
        print(f"  FAIL {msg}")
    if fails:
        print(f"terraform: {len(fails)} problem(s)")
        sys.exit(1)
    print(f"  ok   {len(files)} files parse; {len(variables)} variables (documented, typed, "
          f"validated, all used), {len(resources)} resources, {len(outputs)} outputs wired")
    print("terraform: module checks pass")


if __name__ == "__main__":
    main()
