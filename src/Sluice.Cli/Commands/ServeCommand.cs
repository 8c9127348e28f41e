using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Sluice.Server.Configuration;
using Sluice.Server.Hosting;

namespace Sluice.Cli.Commands;

/// <summary>`sluice serve`: load the configuration, then run the server until SIGTERM or Ctrl-C.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var command = new Command("serve", "Run the Sluice server (Liftbridge's flags and YAML configuration work unchanged)");
        Attach(command);
        return command;
    }

    /// <summary>Adds the serve flags and action to a command (also used by the root, for Liftbridge's launch line).</summary>
    public static void Attach(Command command)
    {
        var flags = new ServeFlags();
        flags.AddTo(command);
        command.SetAction((parsed, ct) => RunAsync(flags, parsed, ct));
    }

    private static async Task<int> RunAsync(ServeFlags flags, ParseResult parsed, CancellationToken ct)
    {
        var configFile = parsed.GetValue(flags.Config);
        LoadedConfiguration loaded;
        try
        {
            loaded = ConfigLoader.LoadFile(configFile, ConfigLoader.ProcessEnvironment(), flags.Read(parsed));
        }
        catch (ConfigurationException e)
        {
            await Console.Error.WriteLineAsync("sluice: " + e.Message).ConfigureAwait(false);
            return SluiceCommandLine.UsageError;
        }

        var options = loaded.Options with { DataDir = Path.GetFullPath(loaded.Options.DataDir) };
        using var loggers = ConsoleLogging.Create(options.Logging.Level);
        var log = loggers.CreateLogger("Sluice");

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var onInt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);

        log.LogInformation("Sluice {Version} starting", SluiceCommandLine.Version);
        log.LogInformation("configuration file: {File}", configFile is null ? "none" : Path.GetFullPath(configFile));
        foreach (var warning in loaded.Warnings)
        {
            log.LogWarning("{Warning}", warning);
        }

        foreach (var ignored in loaded.IgnoredSettings)
        {
            log.LogWarning("{Ignored}", ignored.Message);
        }

        log.LogInformation("listen address: {Listen} (advertised as {Advertised})", options.ListenEndpoint, options.AdvertisedAddress);
        log.LogInformation("data dir: {DataDir}", options.DataDir);

        try
        {
            Directory.CreateDirectory(options.DataDir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            log.LogError("Cannot use data dir {DataDir}: {Reason}", options.DataDir, e.Message);
            return 1;
        }

        // The server id is resolved (and persisted) by the server once it holds the data directory's lock, so a
        // server refused because another one runs there leaves the running server's id alone; it is logged then.
        log.LogInformation("durability: {Durability}{Interval}", options.Storage.Durability.ToString().ToLowerInvariant(),
            options.Storage.Durability == DurabilityMode.Interval ? " every " + GoDuration.Format(options.Storage.FsyncInterval) : "");

        return await ServerRunner.RunAsync(options, loggers, stop.Token).ConfigureAwait(false);

        void Stop(PosixSignalContext context)
        {
            context.Cancel = true; // keep the process alive until the server has stopped gracefully
            if (!stop.IsCancellationRequested)
            {
                log.LogInformation("received {Signal}, stopping", context.Signal);
                stop.Cancel();
            }
        }
    }
}
