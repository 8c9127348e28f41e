using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace Sluice.Server.Hosting;

/// <summary>
/// The server's id: `clustering.server.id` when given, else the id persisted in `&lt;data.dir&gt;/server-id`,
/// else a new random one that is then persisted so it survives restarts.
/// </summary>
/// <remarks>
/// Liftbridge lets the persisted id win over a configured one (quirk 12), which silently ignores an operator's
/// change. Sluice uses the configured id, warns that it differs from the persisted one, and persists it.
/// </remarks>
public static class ServerIdentity
{
    /// <summary>File name under the data directory (plain text, one line).</summary>
    public const string FileName = "server-id";

    private const int IdLength = 22;
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>A new random id: 22 base-62 characters (about 131 bits), the length of a NATS NUID.</summary>
    public static string NewId() => RandomNumberGenerator.GetString(Alphabet, IdLength);

    /// <summary>Decides the id, persists it in <paramref name="dataDir"/>, and returns it.</summary>
    /// <exception cref="IOException">The id file cannot be read or written.</exception>
    public static string Resolve(string dataDir, string? configuredId, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var path = Path.Combine(dataDir, FileName);
        var persisted = ReadPersisted(path);
        string id;
        if (!string.IsNullOrWhiteSpace(configuredId))
        {
            id = configuredId.Trim();
            if (persisted is not null && persisted != id)
            {
                logger.LogWarning(
                    "Configured server id {ConfiguredId} differs from the id {PersistedId} persisted in {Path}; using {ConfiguredId} and persisting it (Liftbridge would keep the persisted id)",
                    id, persisted, path, id);
            }
        }
        else
        {
            id = persisted ?? NewId();
        }

        if (persisted != id)
        {
            Persist(path, id);
        }

        return id;
    }

    private static string? ReadPersisted(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var text = File.ReadAllText(path).Trim();
        return text.Length > 0 ? text : null;
    }

    private static void Persist(string path, string id)
    {
        // Write then rename, so a crash never leaves a half-written id behind.
        var temp = path + ".tmp";
        File.WriteAllText(temp, id + "\n");
        File.Move(temp, path, overwrite: true);
    }
}
