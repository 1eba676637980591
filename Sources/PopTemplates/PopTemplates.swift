/// Template manifests, plugin discovery and the built-in templates.
public enum PopTemplates {}
