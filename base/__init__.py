"""Floor 0: what is not physics, used by every floor above: files written atomically (`files`), injected fault
points for the reliability tests (`faults`), where porelab may write (`workspace`), reading a user's YAML
(`yaml_file`), console output and one-line CLI errors (`console`), the `PorelabError` base (`errors`). It imports
nothing else of porelab."""
