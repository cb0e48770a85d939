"""Pure planning: from spec and observed facts to desired objects and rendered files. No I/O."""
