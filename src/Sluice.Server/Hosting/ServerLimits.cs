using System.Globalization;
using Sluice.Server.Configuration;

namespace Sluice.Server.Hosting;

/// <summary>
/// The limits a server runs with: the configured ones, lowered where the machine could not honour them
/// (<see cref="MachineLimits"/>), each lowering with a warning that says why. Pure, so tests can feed it any machine.
/// </summary>
internal sealed record ServerLimits
{
    /// <summary>Descriptors kept out of every budget: the runtime's own, the metadata store, checkpoint and index rewrites, pipes.</summary>
    internal const long ReservedFiles = 128;

    /// <summary>Threads kept free beyond the connections' reader threads, for the thread pool, timers and the GC (at least).</summary>
    internal const long MinThreadHeadroom = 64;

    /// <summary>Segment files held open at once (storage.max.open.files, or less).</summary>
    public required int MaxOpenFiles { get; init; }

    /// <summary>Client connections served at once (grpc.max.connections, or less).</summary>
    public required int MaxConnections { get; init; }

    /// <summary>What set <see cref="MaxConnections"/>: the key, or the machine limit that lowered it.</summary>
    public required string MaxConnectionsSource { get; init; }

    /// <summary>Client connections served at once from one IP address.</summary>
    public required int MaxConnectionsPerAddress { get; init; }

    /// <summary>
    /// Native transport: connections read on a thread of their own at once (a busy connection holds one; a quiet one
    /// none). Past it a connection is read on the thread pool. Below the thread limit, so thread creation never fails.
    /// </summary>
    public int MaxReaderThreads { get; init; } = int.MaxValue;

    /// <summary>What the operator should know about each lowered limit.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>
    /// Open files: the segment budget gets at most half of what the open-file limit leaves after
    /// <see cref="ReservedFiles"/>, and connections (a socket each) the rest, so neither can starve the other.
    /// Threads (native transport: a reader thread per busy connection): reader threads get what is left of the thread
    /// limit after a headroom of an eighth (at least <see cref="MinThreadHeadroom"/>), so thread creation never fails,
    /// which the runtime cannot survive everywhere; connections themselves hold no thread while quiet.
    /// </summary>
    public static ServerLimits Compute(ServerOptions options, MachineLimits machine)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(machine);
        var warnings = new List<string>();
        var files = options.Storage.MaxOpenFiles;
        var connections = options.GrpcMaxConnections;
        var source = "grpc.max.connections";

        if (machine.OpenFiles is { } openFiles)
        {
            var usable = Math.Max(32, openFiles - ReservedFiles);
            var fileBudget = (int)Math.Clamp(usable / 2, 16, int.MaxValue);
            if (files > fileBudget)
            {
                warnings.Add(Invariant($"storage.max.open.files {files} lowered to {fileBudget}: the process may open {openFiles} files (RLIMIT_NOFILE) and needs the rest for sockets and its own files; raise the limit (ulimit -n, LimitNOFILE=) to use more"));
                files = fileBudget;
            }

            var socketBudget = (int)Math.Clamp(usable - files, 1, int.MaxValue);
            if (connections > socketBudget)
            {
                warnings.Add(Invariant($"grpc.max.connections {connections} lowered to {socketBudget}: the open-file limit ({openFiles}, RLIMIT_NOFILE) leaves room for no more sockets beside {files} segment files"));
                connections = socketBudget;
                source = "the process's open-file limit";
            }
        }

        var readerThreads = int.MaxValue;
        if (options.GrpcTransport == Grpc.GrpcServerTransport.Native && machine.ThreadsAvailable is { } threads)
        {
            var headroom = Math.Max(MinThreadHeadroom, threads / 8);
            readerThreads = (int)Math.Clamp(threads - headroom, 1, int.MaxValue);
            if (readerThreads < connections)
            {
                warnings.Add(Invariant($"at most {readerThreads} connections get a reader thread of their own at once: {threads} more threads can start ({machine.ThreadLimitSource}), less {headroom} kept for the server itself; busy connections past that are read on the thread pool"));
            }
        }

        var perAddress = options.GrpcMaxConnectionsPerAddress ?? Math.Max(1, connections / 2);
        return new ServerLimits
        {
            MaxOpenFiles = files,
            MaxConnections = connections,
            MaxConnectionsSource = source,
            MaxConnectionsPerAddress = perAddress,
            MaxReaderThreads = readerThreads,
            Warnings = warnings,
        };
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
