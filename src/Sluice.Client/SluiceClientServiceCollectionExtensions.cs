using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Sluice.Client;

/// <summary>Registers a <see cref="SluiceClient"/> in a dependency-injection container.</summary>
public static class SluiceClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers one shared <see cref="SluiceClient"/> (a singleton, disposed with the container). It
    /// connects on first use. Unless <paramref name="configure"/> sets a logger factory, the
    /// container's <see cref="ILoggerFactory"/> is used when there is one.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="addresses">Seed brokers, "host:port".</param>
    /// <param name="configure">Adjusts the options (e.g. <c>o => o with { AckWaitTime = ... }</c>); null keeps the defaults.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddSluiceClient(this IServiceCollection services, IEnumerable<string> addresses, Func<SluiceClientOptions, SluiceClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(addresses);
        var seeds = addresses.ToArray();
        if (seeds.Length == 0)
        {
            throw new ArgumentException("no addresses provided", nameof(addresses));
        }

        services.TryAddSingleton(provider =>
        {
            var options = SluiceClientOptions.Default;
            if (provider.GetService<ILoggerFactory>() is { } loggerFactory)
            {
                options = options with { LoggerFactory = loggerFactory };
            }

            options = configure?.Invoke(options) ?? options;
            if (options.LoggerFactory is null)
            {
                options = options with { LoggerFactory = NullLoggerFactory.Instance };
            }

            return new SluiceClient(seeds, options);
        });
        return services;
    }
}
