from edgedns.cli import main

main()
