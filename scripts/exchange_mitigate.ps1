# salve-script: exchange_mitigate
# Apply or remove the Exchange On-premises Mitigation Tool's (EOMT) URL Rewrite mitigations, by
# the catalogue's id (contract: MitigateRequest -> MitigateAnswer), as CSS-Exchange's EOMT writes
# them (Security/src/EOMT/Mitigations/CVE-2021-26855.ps1 and CVE-2026-42897.ps1):
# - eomt-cve-2021-26855: two inbound rules on the Default Web Site that abort requests whose
#   cookie carries X-AnonResource-Backend or X-BEResource (ProxyLogon SSRF);
# - eomt-cve-2026-42897: an outbound rule on Default Web Site/owa that appends
#   "script-src-attr 'none'" to the Content-Security-Policy header of OWA's HTML shell pages,
#   scoped by a preCondition (OWA cross-site scripting). The same names and values as EOMT's,
#   so EOMT -ShowMitigationStatus and HealthChecker recognise it.
#
# Apply: installs the IIS URL Rewrite module first when it is missing and a source was given
# (pulled by this host from a UNC path or an HTTP(S) URL, SHA-256 checked when given, Authenticode
# signature checked), then writes each missing mitigation, replacing same-named leftovers.
# Remove: deletes each named mitigation's rules (and its preCondition); when no inbound rewrite
# rule remains, clears the inbound rules section (as EOMT's -RollbackMitigation does). The URL
# Rewrite module itself is left installed.

$rebootRequired = $false
$site = 'IIS:\Sites\Default Web Site'
$owa = 'IIS:\Sites\Default Web Site\owa'
$rulesFilter = 'system.webServer/rewrite/rules'
$outboundFilter = 'system.webServer/rewrite/outboundRules'
$rules = [ordered]@{
    'X-AnonResource-Backend Abort - inbound' = @{ pattern = '(.*)X-AnonResource-Backend(.*)'; stop = $false }
    'X-BEResource Abort - inbound'           = @{ pattern = '(.*)X-BEResource=(.+)/(.+)~(.+)'; stop = $true }
}
$cspRule = 'EOMT OWA CSP - outbound'
$cspPreCondition = 'EOMT OWA SPA HTML shell - precondition'
$cspPages = '^/owa/?($|\?|default\.aspx|projection\.aspx|readingPane\.aspx|popout\.aspx)'
$cspValue = "{R:1}; script-src-attr 'none'"
$changed = $false

function Write-SalveAnswer([bool] $Changed, [bool] $Success, $Reason) {
    $answer = [ordered]@{
        changed               = $Changed
        success               = $Success
        reason                = $Reason
        url_rewrite_installed = [bool] (Get-SalveRewriteVersion)
        reboot_required       = [bool] $script:rebootRequired
        rules_present         = @(Get-SalveRulesPresent)
    }
    Write-Output ('##salve-result## ' + (ConvertTo-Json -InputObject $answer -Depth 8 -Compress))
}

function Get-SalveRewriteVersion {
    $item = Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\IIS Extensions\URL Rewrite' -Name 'Version' -ErrorAction SilentlyContinue
    if ($item) { return [string] $item.Version }
    return $null
}

# Writes each mitigation rule name present, one by one (the inbound rules, then the outbound
# one); callers collect them with @( ).
function Get-SalveRulesPresent {
    if (-not (Get-SalveRewriteVersion)) { return }
    $names = @(Get-WebConfigurationProperty -PSPath $site -Filter "$rulesFilter/rule" -Name 'name' -ErrorAction SilentlyContinue |
            ForEach-Object { [string] $_.Value })
    $rules.Keys | Where-Object { $names -contains $_ }
    $outbound = @(Get-WebConfigurationProperty -PSPath $owa -Filter "$outboundFilter/rule" -Name 'name' -ErrorAction SilentlyContinue |
            ForEach-Object { [string] $_.Value })
    if ($outbound -contains $cspRule) { $cspRule }
}

# eomt-cve-2021-26855: each missing inbound rule, written whole.
function Add-SalveInboundRules {
    $present = @(Get-SalveRulesPresent)
    foreach ($name in $rules.Keys) {
        if ($present -contains $name) { continue }
        $rule = $rules[$name]
        $filter = "$rulesFilter/rule[@name='$name']"
        Write-Host "Adding rewrite rule '$name' to $site"
        Clear-WebConfiguration -PSPath $site -Filter $filter -ErrorAction SilentlyContinue
        Add-WebConfigurationProperty -PSPath $site -Filter $rulesFilter -Name '.' -Value @{
            name           = $name
            patternSyntax  = 'Regular Expressions'
            stopProcessing = $rule.stop
        }
        Set-WebConfigurationProperty -PSPath $site -Filter "$filter/match" -Name 'url' -Value '.*'
        Add-WebConfigurationProperty -PSPath $site -Filter "$filter/conditions" -Name '.' -Value @{
            input      = '{HTTP_COOKIE}'
            matchType  = 'Pattern'
            pattern    = $rule.pattern
            ignoreCase = $true
            negate     = $false
        }
        Set-WebConfigurationProperty -PSPath $site -Filter "$filter/action" -Name 'type' -Value 'AbortRequest'
        $script:changed = $true
    }
}

# eomt-cve-2026-42897: the preCondition (HTML responses of OWA's shell pages), then the outbound
# rule that rewrites RESPONSE_Content_Security_Policy, each step as EOMT's GetActions has it.
function Add-SalveOwaCsp {
    if (@(Get-SalveRulesPresent) -contains $cspRule) { return }
    $ruleFilter = "$outboundFilter/rule[@name='$cspRule']"
    $preFilter = "$outboundFilter/preConditions/preCondition[@name='$cspPreCondition']"
    Write-Host "Adding outbound rewrite rule '$cspRule' to $owa"
    Clear-WebConfiguration -PSPath $owa -Filter $ruleFilter -ErrorAction SilentlyContinue
    Clear-WebConfiguration -PSPath $owa -Filter $preFilter -ErrorAction SilentlyContinue
    Add-WebConfigurationProperty -PSPath $owa -Filter "$outboundFilter/preConditions" -Name '.' -Value @{
        name            = $cspPreCondition
        logicalGrouping = 'MatchAll'
        patternSyntax   = 'ECMAScript'
    }
    Add-WebConfigurationProperty -PSPath $owa -Filter $preFilter -Name '.' -Value @{
        input   = '{RESPONSE_CONTENT_TYPE}'
        pattern = '^text/html'
    }
    Add-WebConfigurationProperty -PSPath $owa -Filter $preFilter -Name '.' -Value @{
        input   = '{REQUEST_URI}'
        pattern = $cspPages
    }
    Add-WebConfigurationProperty -PSPath $owa -Filter $outboundFilter -Name '.' -Value @{
        name           = $cspRule
        preCondition   = $cspPreCondition
        patternSyntax  = 'ECMAScript'
        stopProcessing = 'False'
    }
    Set-WebConfigurationProperty -PSPath $owa -Filter "$ruleFilter/match" -Name 'serverVariable' -Value 'RESPONSE_Content_Security_Policy'
    Set-WebConfigurationProperty -PSPath $owa -Filter "$ruleFilter/match" -Name 'pattern' -Value '(.*)'
    Set-WebConfigurationProperty -PSPath $owa -Filter "$ruleFilter/action" -Name 'type' -Value 'Rewrite'
    Set-WebConfigurationProperty -PSPath $owa -Filter "$ruleFilter/action" -Name 'value' -Value $cspValue
    $script:changed = $true
}

function Remove-SalveInboundRules {
    $removed = $false
    foreach ($name in @(Get-SalveRulesPresent)) {
        if (-not $rules.Contains($name)) { continue }
        Write-Host "Removing rewrite rule '$name' from $site"
        Clear-WebConfiguration -PSPath $site -Filter "$rulesFilter/rule[@name='$name']"
        $removed = $true
        $script:changed = $true
    }
    $left = @(Get-WebConfigurationProperty -PSPath $site -Filter "$rulesFilter/rule" -Name 'name' -ErrorAction SilentlyContinue)
    if ($removed -and $left.Count -eq 0) {
        Clear-WebConfiguration -PSPath $site -Filter $rulesFilter
    }
}

function Remove-SalveOwaCsp {
    if (-not (@(Get-SalveRulesPresent) -contains $cspRule)) { return }
    Write-Host "Removing outbound rewrite rule '$cspRule' from $owa"
    Clear-WebConfiguration -PSPath $owa -Filter "$outboundFilter/rule[@name='$cspRule']"
    Clear-WebConfiguration -PSPath $owa -Filter "$outboundFilter/preConditions/preCondition[@name='$cspPreCondition']" -ErrorAction SilentlyContinue
    $script:changed = $true
}

# Windows Installer runs one installation at a time: msiexec exits at once with 1618
# (ERROR_INSTALL_ALREADY_RUNNING) while another holds it (Windows Update, an agent's MSI, an
# Exchange update). Wait for it, every 30 seconds, for at most $installerWaitSeconds.
$installerWaitSeconds = 900
function Invoke-SalveMsiexec([string[]] $Arguments) {
    $deadline = (Get-Date).AddSeconds($installerWaitSeconds)
    while ($true) {
        $p = Start-Process -FilePath 'msiexec.exe' -ArgumentList $Arguments -Wait -PassThru
        if ($p.ExitCode -ne 1618 -or (Get-Date) -ge $deadline) { return $p }
        Write-Host 'Another installation is in progress (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); retrying in 30 seconds'
        Start-Sleep -Seconds 30
    }
}

# Fetch a package onto this host (UNC copy or HTTP(S) download) and check its SHA-256.
# Progress goes to the host (Write-Host): the function's output is the local path.
function Get-SalvePayload([string] $Source, [string] $Sha256, [string] $FileName) {
    $dir = Join-Path $env:TEMP 'salve'
    New-Item -ItemType Directory -Path $dir -Force | Out-Null
    $target = Join-Path $dir $FileName
    if ($Source -match '^https?://') {
        [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
        Write-Host "Downloading $Source"
        # The proxy the source names, authenticating as this account; else .NET's default.
        $web = @{}
        if ($SalveArgs.rewrite_msi_proxy) {
            $web.Proxy = [string] $SalveArgs.rewrite_msi_proxy
            $web.ProxyUseDefaultCredentials = $true
        }
        Invoke-WebRequest -Uri $Source -OutFile $target -UseBasicParsing @web
    } elseif ($Source -match '^\\\\') {
        Write-Host "Copying $Source"
        Copy-Item -LiteralPath $Source -Destination $target -Force
    } else {
        throw "source '$Source' is neither an http(s):// URL nor a \\server\share UNC path"
    }
    if ($Sha256) {
        $actual = (Get-FileHash -LiteralPath $target -Algorithm SHA256).Hash.ToLowerInvariant()
        if ($actual -ne $Sha256.ToLowerInvariant()) {
            Remove-Item -LiteralPath $target -Force
            throw "SHA-256 of $Source is $actual, expected $($Sha256.ToLowerInvariant()); the file was deleted"
        }
    }
    return $target
}

$identity = [Security.Principal.WindowsPrincipal] [Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $identity.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    [Console]::Error.WriteLine('the session is not elevated; connect with an account in the local Administrators group')
    exit 1
}
if (-not (Get-ItemProperty -LiteralPath 'HKLM:\SOFTWARE\Microsoft\ExchangeServer\v15\Setup' -Name 'MsiInstallPath' -ErrorAction SilentlyContinue)) {
    Write-SalveAnswer $false $false 'no Exchange 2013, 2016 or 2019 installation found (MsiInstallPath missing)'
    exit 1
}

try {
    Import-Module WebAdministration -ErrorAction Stop
    $wanted = @($SalveArgs.mitigations)
    foreach ($id in $wanted) {
        if ($id -ne 'eomt-cve-2021-26855' -and $id -ne 'eomt-cve-2026-42897') {
            throw "unknown mitigation '$id': this script writes eomt-cve-2021-26855 and eomt-cve-2026-42897"
        }
    }
    if ($SalveArgs.action -eq 'apply') {
        if (-not (Get-SalveRewriteVersion)) {
            if (-not $SalveArgs.rewrite_msi_source) {
                Write-SalveAnswer $false $false 'the IIS URL Rewrite module is not installed and no rewrite_msi_source was given'
                exit 1
            }
            $msi = Get-SalvePayload $SalveArgs.rewrite_msi_source $SalveArgs.rewrite_msi_sha256 'rewrite.msi'
            $signature = Get-AuthenticodeSignature -FilePath $msi
            if ($signature.Status -ne 'Valid') {
                throw "the URL Rewrite package is not validly signed ($($signature.Status))"
            }
            $log = Join-Path (Split-Path $msi) 'RewriteModuleInstall.log'
            Write-Output "Installing IIS URL Rewrite module from $($SalveArgs.rewrite_msi_source)"
            $p = Invoke-SalveMsiexec @('/i', "`"$msi`"", '/qn', '/norestart', '/l*v', "`"$log`"")
            # 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) and 1641 (ERROR_SUCCESS_REBOOT_INITIATED)
            # are successful installs that need a restart.
            switch ($p.ExitCode) {
                0 { }
                3010 { $script:rebootRequired = $true }
                1641 { $script:rebootRequired = $true }
                1618 { throw "another installation is still in progress after waiting $($installerWaitSeconds / 60) minutes (msiexec 1618, ERROR_INSTALL_ALREADY_RUNNING); nothing was installed" }
                default { throw "msiexec exited with $($p.ExitCode) installing URL Rewrite; see $log" }
            }
            if (-not (Get-SalveRewriteVersion)) { throw "URL Rewrite is still not registered after the install; see $log" }
            $changed = $true
        }
        foreach ($id in $wanted) {
            if ($id -eq 'eomt-cve-2021-26855') { Add-SalveInboundRules } else { Add-SalveOwaCsp }
        }
    } elseif ($SalveArgs.action -eq 'remove') {
        if (Get-SalveRewriteVersion) {
            foreach ($id in $wanted) {
                if ($id -eq 'eomt-cve-2021-26855') { Remove-SalveInboundRules } else { Remove-SalveOwaCsp }
            }
        }
    } else {
        throw "action must be 'apply' or 'remove', got '$($SalveArgs.action)'"
    }
} catch {
    Write-SalveAnswer $changed $false $_.Exception.Message
    exit 1
}
Write-SalveAnswer $changed $true $null
