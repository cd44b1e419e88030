"""Post endpoints: corrections of a post's triage labels."""
