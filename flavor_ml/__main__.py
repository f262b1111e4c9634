from flavor_ml.cli import main

main()
