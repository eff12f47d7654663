from microshop.cli import main

main(prog_name="microshop")
