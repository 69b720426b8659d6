"""`python -m iap_bench` runs the `iap-bench` console script."""

from iap_bench.cli import main

main()
