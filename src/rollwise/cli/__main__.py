from rollwise.cli.app import main

main()
