"""Activities: thin methods on classes that receive their providers and DB in __init__."""
