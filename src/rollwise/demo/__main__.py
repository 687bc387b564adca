from rollwise.demo.app import main

main()
