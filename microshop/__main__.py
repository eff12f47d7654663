from microshop.cli import main

main()
