/// Template manifests, plugin discovery and the built-in templates.
///
/// Start with ``TemplateCatalog/discover(environment:systemDirectory:builtinDirectory:)`` to list and resolve
/// templates, and ``OptionResolver`` to check option values given on the command line.
public enum PopTemplates {}
