from trainfiles.cli import main

main()
