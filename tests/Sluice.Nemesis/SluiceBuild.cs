using System.Reflection;

namespace Sluice.Nemesis;

/// <summary>Finds the `sluice.dll` built beside this tool (same configuration and target framework).</summary>
internal static class SluiceBuild
{
    public static string FindDll()
    {
        var configuration = typeof(SluiceBuild).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Release";
        var framework = new DirectoryInfo(AppContext.BaseDirectory).Name;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sluice.slnx")))
        {
            dir = dir.Parent;
        }

        var path = dir is null ? null : Path.Combine(dir.FullName, "src", "Sluice.Cli", "bin", configuration, framework, "sluice.dll");
        return path is not null && File.Exists(path)
            ? path
            : throw new InvalidOperationException($"sluice.dll not found ({path ?? "no Sluice.slnx above " + AppContext.BaseDirectory}); build the solution or pass --sluice-dll");
    }
}
