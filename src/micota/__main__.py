from micota.cli import main

main()
