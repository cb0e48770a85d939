"""Stand-in for Triton's tools/fill_template.py with its command line: fill `${key}`s in place.

`python3 fill_template.py -i config.pbtxt "key:value,key2:value2"`. Like the original, unknown keys
are left as they are (the operator itself uses build_jobs/triton_repo.py, the strict filler; this
file only exists so the image has every path the toolchain profile names).
"""

import argparse
from string import Template


def substitutions(text: str) -> dict[str, str]:
    """ "k:v,k2:v2" -> {"k": "v", "k2": "v2"}."""
    pairs = (item.split(":", 1) for item in text.split(",") if item)
    return {key: value for key, value in pairs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--file_path", required=True)
    parser.add_argument("substitutions")
    parser.add_argument("--in_place", action="store_true", default=True)
    args = parser.parse_args()
    with open(args.file_path) as handle:
        text = Template(handle.read()).safe_substitute(substitutions(args.substitutions))
    with open(args.file_path, "w") as handle:
        handle.write(text)
