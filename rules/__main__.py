"""``python -m rules [list|generate]``: list the catalog, or regenerate CATALOG.md and compiled/."""
import sys

from rules.catalog import load_catalog
from rules.docs import listing, write_all


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "list"
    if cmd == "list":
        print(listing(load_catalog()))
    elif cmd == "generate":
        for p in write_all():
            print(f"wrote {p}")
    else:
        print("usage: python -m rules [list|generate]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
