using System.Globalization;
using Sluice.Nemesis;
using Sluice.TestKit;

// sluice-nemesis: a fault-injection run against a local Sluice cluster (see scripts/nemesis.sh and docs/reliability.md).
// Exit code 0 when the checker found nothing, 1 when it found violations, 2 on bad arguments.
string? plan = null;
string? sluiceDll = null;
string? work = null;
string? output = null;
var options = new Dictionary<string, string>(StringComparer.Ordinal);
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
    switch (args[i])
    {
        case "--plan": plan = Next(); break;
        case "--system": options["--system"] = Next(); break;
        case "--liftbridge": options["--liftbridge"] = Next(); break;
        case "--sluice-dll": sluiceDll = Next(); break;
        case "--work": work = Next(); break;
        case "--out": output = Next(); break;
        case "--partitions" or "--publishers" or "--hold" or "--quiet" or "--seed" or "--tmpfs-mb" or "--recovery-timeout" or "--message-bytes" or "--extra-config":
            options[args[i]] = Next();
            break;
        case "-h" or "--help":
            Console.WriteLine("""
                usage: sluice-nemesis --plan KIND:N[,KIND:N...] [--system sluice|liftbridge] [--liftbridge BINARY]
                         [--sluice-dll PATH] [--work DIR] [--out FILE]
                         [--partitions 3] [--publishers 6] [--hold 8] [--quiet 3] [--seed 1] [--tmpfs-mb 1024]
                         [--recovery-timeout 60] [--message-bytes 256] [--extra-config YAML]
                kinds: leader-kill, controller-kill, pause, partition, etcd-kill, disk-full (needs --tmpfs-mb, root), slow-follower
                """);
            return 0;
        default:
            Console.Error.WriteLine($"sluice-nemesis: unknown argument '{args[i]}' (--help)");
            return 2;
    }
}

if (plan is null)
{
    Console.Error.WriteLine("sluice-nemesis: --plan is required (--help)");
    return 2;
}

int Int(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
var faults = NemesisOptions.ParsePlan(plan);
work ??= Path.Combine(Path.GetTempPath(), "sluice-nemesis-" + DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture));
var nemesis = new NemesisOptions
{
    SystemName = options.GetValueOrDefault("--system", "sluice"),
    LiftbridgeBinary = options.GetValueOrDefault("--liftbridge"),
    SluiceDll = sluiceDll ?? (options.GetValueOrDefault("--system", "sluice") == "sluice" ? SluiceBuild.SluiceDll : ""),
    WorkDirectory = work,
    Faults = faults,
    Partitions = Int("--partitions", 3),
    Publishers = Int("--publishers", 6),
    Hold = TimeSpan.FromSeconds(Int("--hold", 8)),
    Quiet = TimeSpan.FromSeconds(Int("--quiet", 3)),
    Seed = Int("--seed", 1),
    RecoveryTimeout = TimeSpan.FromSeconds(Int("--recovery-timeout", 60)),
    MessageBytes = Int("--message-bytes", 256),
    TmpfsBytes = options.ContainsKey("--tmpfs-mb") ? Int("--tmpfs-mb", 0) * 1024L * 1024 : faults.Contains(FaultKind.DiskFull) ? 1024L * 1024 * 1024 : null,
    ExtraConfig = options.GetValueOrDefault("--extra-config", ""),
    Log = Console.Out,
};

var result = await NemesisRun.RunAsync(nemesis);
var markdown = Report.Markdown(result) + "\n" + Report.Timeline(result);
Console.WriteLine();
Console.WriteLine(markdown);
if (output is not null)
{
    await File.AppendAllTextAsync(output, markdown + "\n");
}

return result.Violations.Count == 0 ? 0 : 1;
