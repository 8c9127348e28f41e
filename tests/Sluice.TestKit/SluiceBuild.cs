using System.Reflection;

namespace Sluice.TestKit;

/// <summary>Where the solution build put `sluice.dll`, for tests and tools that run it as a child process.</summary>
public static class SluiceBuild
{
    /// <summary>
    /// `src/Sluice.Cli/bin/{configuration}/{framework}/sluice.dll` under the checkout, with the configuration and target
    /// framework this assembly was built with (the same solution build builds both).
    /// </summary>
    public static string SluiceDll { get; } = Find();

    private static string Find()
    {
        var configuration = typeof(SluiceBuild).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var framework = new DirectoryInfo(AppContext.BaseDirectory).Name;
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Sluice.slnx")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            throw new InvalidOperationException("Sluice.slnx not found above " + AppContext.BaseDirectory);
        }

        var path = System.IO.Path.Combine(dir.FullName, "src", "Sluice.Cli", "bin", configuration, framework, "sluice.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException("Build the solution first; sluice.dll not found", path);
    }
}
